"""`relunet serve` under concurrent clients: requests/s, latency and errors at 1, 16 and 64.

    python benchmarks/bench_serve.py                      # 1, 16, 64 clients, 10 s each
    python benchmarks/bench_serve.py --serve-args="--enable-batching=false"
    python benchmarks/bench_serve.py --json
    python benchmarks/bench_serve.py --decoders           # the pixel body's readers, in-process
    python benchmarks/bench_serve.py --calls              # a model call's cost by batch size
    python benchmarks/bench_serve.py --photos 96          # photos beside digits, 1, 16, 64

Starts a real `relunet serve` process on a free port of 127.0.0.1 (loopback only),
serving an export of an untrained `--preset best` network (784-512-512-10: the weights
do not change the cost, the shape does). At each level, N client threads each post
one digit as a b64 PNG to `serving_bytes`, one request after another over a keep-alive
connection (http.client), while one more client posts a 1,000-image pixel request
(`instances`, nested JSON lists, about 4 MB) to `serving_default` once a second. Each
level runs for a fixed time after a warm-up, then stops by itself; every answer is
checked (status 200, one prediction per image), so a failed request is counted as an
error, never as a fast one. Latency is each request's round trip (p50, p99, max);
requests/s counts every answered request, both kinds, over the level's time.

`--photos N` serves photos as users post them: N photos made by
benchmarks/reading_sets.py from MNIST's test digits written on paper (pages of 200x200
to 1200x900, JPEG and PNG in turn, one digit or a number of 2 to 4 each; RELUNET_DATA_DIR
names the MNIST files), each client posting them in turn as b64 to `serving_bytes`;
at each level the photo clients run, then as many digit clients (with the pixel client
unless `--pixel-images 0`), on the same server. It also times readiness: from the
process's start to its first 200 from /readyz, and the first photo request after it
against the 100th.
The server's own metrics say how long its model took to load
and then to warm up (`relunet_model_load_seconds`, `relunet_model_warm_up_seconds`).
`--single-digit-photos` makes them as the issue describes its set: one digit each, on
pages of 120x120 to 900x700.

`--decoders` times, in this process, the readers of the 1,000-image pixel body that
were candidates: `json` then `np.asarray`, orjson and msgspec then `np.asarray` (each
if installed), and relunet's (`relunet.serve.decode.read_request`); best of 5.
`--calls` times one call of each signature, in this process, for 1 to 256 images.
"""

from __future__ import annotations

import argparse
import base64
import http.client
import itertools
import json
import os
import platform
import shlex
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request

import numpy as np

from relunet.data.idx import greyscale_png  # no TensorFlow here

PREDICT = "/v1/models/relunet:predict"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def bodies(pixel_images: int) -> dict[str, bytes]:
    """One digit as a b64 PNG, and `pixel_images` digits as pixels, in TF Serving's rows."""
    rng = np.random.default_rng(0)
    digits = (rng.random((max(pixel_images, 1), 28, 28)) > 0.8).astype(np.uint8) * 255
    b64 = base64.b64encode(greyscale_png(digits[0])).decode()
    return {
        "b64_png": json.dumps(
            {"signature_name": "serving_bytes", "instances": [{"b64": b64}]}
        ).encode(),
        "pixels": json.dumps({"instances": digits[:pixel_images, ..., None].tolist()}).encode(),
    }


class Tally:
    """Latencies and errors of one kind of request, shared by the threads that post it."""

    def __init__(self) -> None:
        self.latencies: list[float] = []
        self.batched: list[int] = []  # requests in each answer's model call (X-Relunet-Batch)
        self.errors = 0
        self.first_error = ""
        self.lock = threading.Lock()

    def add(self, seconds: float | None, error: str = "", batched: int | None = None) -> None:
        with self.lock:
            if error:
                self.errors += 1
                self.first_error = self.first_error or error
            else:
                self.latencies.append(seconds)
                if batched:
                    self.batched.append(batched)

    def summary(self, wall: float) -> dict:
        ms = sorted(1000 * x for x in self.latencies)
        pick = lambda q: round(ms[min(len(ms) - 1, int(q * len(ms)))], 1) if ms else None  # noqa: E731
        return {
            "requests": len(ms),
            "errors": self.errors,
            "first_error": self.first_error,
            "requests_per_second": round(len(ms) / wall, 1),
            "p50_ms": round(statistics.median(ms), 1) if ms else None,
            "p99_ms": pick(0.99),
            "max_ms": round(ms[-1], 1) if ms else None,
            "mean_requests_a_batch": (
                round(statistics.mean(self.batched), 1) if self.batched else None
            ),
        }


def post(
    connection: http.client.HTTPConnection, body: bytes, images: int
) -> tuple[str, int | None]:
    """POST one :predict request: ('' if it was answered with `images` predictions, or
    what was wrong; how many requests its batch held, if it was batched)."""
    connection.request("POST", PREDICT, body=body, headers={"Content-Type": "application/json"})
    response = connection.getresponse()
    answer = response.read()
    if response.status != 200:
        return f"HTTP {response.status}: {answer[:200]!r}", None
    if len(json.loads(answer)["predictions"]) != images:
        return "a wrong number of predictions", None
    batch = response.getheader("X-Relunet-Batch")  # "requests=3, images=3, thread=1"
    return "", int(batch.split(",")[0].split("=")[1]) if batch else None


def client(
    port: int, body: bytes | list[bytes], images: int, tally: Tally, stop: float, every: float
) -> None:
    """Post `body` (or each of a list in turn) until `stop` (time.perf_counter), at once
    or once `every` seconds."""
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=60)
    next_start = time.perf_counter()
    turn = itertools.cycle(body if isinstance(body, list) else [body])
    while True:
        if every:  # on time, or at once when the last answer came late (no catching up)
            time.sleep(max(0.0, next_start - time.perf_counter()))
        start = time.perf_counter()
        next_start = max(next_start + every, start)
        if start >= stop:
            break
        try:
            error, batched = post(connection, next(turn), images)
        except (OSError, http.client.HTTPException, ValueError) as failure:
            error, batched = f"{type(failure).__name__}: {failure}", None
            connection.close()
            connection = http.client.HTTPConnection("127.0.0.1", port, timeout=60)
        tally.add(time.perf_counter() - start, error, batched)
    connection.close()


def level(port: int, bodies: dict, clients: int, seconds: float, pixel_images: int) -> dict:
    """`clients` b64 clients and one pixel client once a second, for `seconds`. A list
    of b64 bodies (photos) is posted in turn by each client, from a different start."""
    b64, pixels = Tally(), Tally()
    stop = time.perf_counter() + seconds
    many = bodies["b64_png"] if isinstance(bodies["b64_png"], list) else [bodies["b64_png"]]
    threads = [
        threading.Thread(
            target=client,
            args=(port, many[k % len(many) :] + many[: k % len(many)], 1, b64, stop, 0.0),
        )
        for k in range(clients)
    ]
    if pixel_images:
        args = (port, bodies["pixels"], pixel_images, pixels, stop, 1.0)
        threads.append(threading.Thread(target=client, args=args))
    start = time.perf_counter()
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    wall = time.perf_counter() - start
    answered = len(b64.latencies) + len(pixels.latencies)
    return {
        "requests_per_second": round(answered / wall, 1),
        "errors": b64.errors + pixels.errors,
        "b64_png": b64.summary(wall),
        "pixels": pixels.summary(wall),
    }


def decoders(body: bytes) -> dict[str, float]:
    """Milliseconds each candidate takes to make the pixel body an array (best of 5)."""
    import importlib

    from relunet.serve.decode import read_request

    def with_numpy(loads):
        return lambda: np.asarray(loads(body)["instances"], np.uint8)

    candidates = {"json + np.asarray": with_numpy(json.loads)}
    for name, loads in (("orjson", "orjson.loads"), ("msgspec", "msgspec.json.decode")):
        try:
            module, _, function = loads.rpartition(".")
            candidates[f"{name} + np.asarray"] = with_numpy(
                getattr(importlib.import_module(module), function)
            )
        except ImportError:
            pass
    candidates["relunet (NumPy on the text)"] = lambda: read_request(body)
    timings = {}
    for name, read in candidates.items():
        best = float("inf")
        for _ in range(5):
            start = time.perf_counter()
            read()
            best = min(best, time.perf_counter() - start)
        timings[name] = round(1000 * best, 1)
    return timings


def photo_bodies(count: int, single: bool = False) -> list[bytes]:
    """`count` photos (benchmarks/reading_sets.py), each as a serving_bytes request;
    `single`: one digit each, on the issue's page sizes."""
    sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
    from reading_sets import photos

    data_dir = os.environ.get("RELUNET_DATA_DIR")
    if not data_dir:
        raise SystemExit("bench_serve.py: error: --photos needs RELUNET_DATA_DIR (the MNIST files)")
    return [
        json.dumps(
            {
                "signature_name": "serving_bytes",
                "instances": [{"b64": base64.b64encode(f).decode()}],
            }
        ).encode()
        for f, _ in photos(count, data_dir, single=single)
    ]


def readiness(folder: str, serve_args: list[str], bodies: list[bytes]) -> dict:
    """A fresh server: seconds from its start to the first 200 from /readyz, and its
    first photo request's latency against the 100th's (ms)."""
    port = free_port()
    start = time.perf_counter()
    server = subprocess.Popen(
        [sys.executable, "-m", "relunet.cli", "serve", folder, "--port", str(port), *serve_args],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        while True:
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{port}/readyz", timeout=5) as r:
                    if r.status == 200:
                        break
            except OSError:
                if server.poll() is not None or time.perf_counter() - start > 120:
                    raise SystemExit("serve did not become ready") from None
                time.sleep(0.02)
        ready = time.perf_counter() - start
        loading = loading_seconds(port)
        connection = http.client.HTTPConnection("127.0.0.1", port, timeout=60)
        times = []
        for k in range(120):
            began = time.perf_counter()
            error, _ = post(connection, bodies[k % len(bodies)], 1)
            assert not error, error
            times.append(1000 * (time.perf_counter() - began))
        connection.close()
    finally:
        server.terminate()
        server.wait(timeout=30)
    later = statistics.median(times[90:110])
    return {
        "seconds_start_to_ready": round(ready, 2),
        **loading,
        "first_request_ms": round(times[0], 1),
        "requests_90_to_110_p50_ms": round(later, 1),
    }


def loading_seconds(port: int) -> dict[str, float]:
    """The served version's load and warm-up seconds, from the server's own metrics: how
    long after its model had loaded the server became ready."""
    from prometheus_client.parser import text_string_to_metric_families

    url = f"http://127.0.0.1:{port}/monitoring/prometheus/metrics"
    with urllib.request.urlopen(url, timeout=5) as response:
        text = response.read().decode()
    found = {
        sample.name: sample.value
        for family in text_string_to_metric_families(text)
        for sample in family.samples
    }
    return {
        "load_seconds": round(found["relunet_model_load_seconds"], 2),
        "warm_up_seconds": round(found["relunet_model_warm_up_seconds"], 2),
    }


def start_server(folder: str, port: int, serve_args: list[str]) -> subprocess.Popen:
    server = subprocess.Popen(
        [sys.executable, "-m", "relunet.cli", "serve", folder, "--port", str(port), *serve_args],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
    )
    deadline = time.monotonic() + 120
    while True:
        try:
            urllib.request.urlopen(f"http://127.0.0.1:{port}/v1/models/relunet", timeout=5).read()
            return server
        except OSError:
            if server.poll() is not None or time.monotonic() > deadline:
                server.kill()
                raise SystemExit(f"serve did not start: {server.stderr.read()}") from None
            time.sleep(0.2)


def export_untrained(folder: str, preset: str) -> None:
    """An untrained network of `--preset PRESET`'s shape, exported to `folder`."""
    subprocess.run(
        [
            sys.executable,
            "-c",
            "from types import SimpleNamespace as N; "
            "from relunet.config import PRESETS, ModelConfig, take; "
            "from relunet.training.model import build_model; "
            "from relunet.inference.export import export_saved_model; "
            f"model = build_model(take(ModelConfig, N(**PRESETS[{preset!r}]))); "
            f"export_saved_model(model, {folder!r}, verbose=False)",
        ],
        check=True,
        capture_output=True,
    )


def call_costs(folder: str) -> dict[str, dict[int, float]]:
    """Milliseconds per image of one call of each signature, by images in the call
    (in this process, best of 20 calls): what batching saves."""
    from relunet.base.quiet import import_tensorflow_quietly

    import_tensorflow_quietly()
    import tensorflow as tf

    loaded = tf.saved_model.load(os.path.join(folder, "1"))
    rng = np.random.default_rng(0)
    digit = (rng.random((28, 28)) > 0.8).astype(np.uint8) * 255
    costs: dict[str, dict[int, float]] = {}
    for name, key, one in (
        ("serving_bytes", "image_bytes", tf.constant([greyscale_png(digit)])),
        ("serving_default", "images", tf.constant(digit[None, ..., None])),
    ):
        signature, costs[name] = loaded.signatures[name], {}
        for size in (1, 4, 16, 64, 128, 256):
            images = tf.concat([one] * size, 0)
            signature(**{key: images})
            best = float("inf")
            for _ in range(20):
                start = time.perf_counter()
                signature(**{key: images})
                best = min(best, time.perf_counter() - start)
            costs[name][size] = round(1000 * best / size, 3)
    return costs


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--clients", default="1,16,64", help="b64 clients at each level")
    parser.add_argument("--seconds", type=float, default=10.0, help="each level's length")
    parser.add_argument("--pixel-images", type=int, default=1000, help="0: no pixel client")
    parser.add_argument("--serve-args", default="", help="more flags for relunet serve")
    parser.add_argument("--decoders", action="store_true", help="time the pixel body's readers")
    parser.add_argument("--calls", action="store_true", help="time model calls by batch size")
    parser.add_argument("--photos", type=int, default=0, help="serve this many photos too")
    parser.add_argument(
        "--single-digit-photos",
        action="store_true",
        help="--photos of one digit each, 120x120 to 900x700 (the issue's set)",
    )
    parser.add_argument("--preset", default="best", help="the served network's shape (untrained)")
    parser.add_argument("--json", action="store_true", help="print one JSON object")
    args = parser.parse_args()
    serve_args = shlex.split(args.serve_args)
    machine = f"{platform.machine()}, {os.cpu_count()} cores"
    if args.decoders:
        body = bodies(args.pixel_images)["pixels"]
        result = {"benchmark": "serve decoders", "bytes": len(body), "ms": decoders(body)}
        if args.json:
            print(json.dumps(result))
            return
        for name, ms in result["ms"].items():
            print(f"{name:>28}: {ms:7.1f} ms for {args.pixel_images} digits ({len(body):,} bytes)")
        return

    with tempfile.TemporaryDirectory(prefix="relunet-bench-serve-") as tmp:
        folder = os.path.join(tmp, "relunet")
        export_untrained(folder, args.preset)
        if args.calls:
            result = {"benchmark": "serve calls", "ms_per_image": call_costs(folder)}
            if args.json:
                print(json.dumps(result))
                return
            for name, by_size in result["ms_per_image"].items():
                shown = ", ".join(f"{n}: {ms:.3f}" for n, ms in by_size.items())
                print(f"{name:>15}, ms an image by images a call: {shown}")
            return
        port = free_port()
        payloads = bodies(args.pixel_images)
        photographs = photo_bodies(args.photos, args.single_digit_photos) if args.photos else []
        ready = readiness(folder, serve_args, photographs) if photographs else None
        server = start_server(folder, port, serve_args)
        try:
            level(port, payloads, 2, min(2.0, args.seconds), args.pixel_images)  # warm-up
            results = {}
            for n in map(int, args.clients.split(",")):
                if photographs:
                    shown = {"b64_png": photographs}
                    results[f"{n}_clients_photos"] = level(port, shown, n, args.seconds, 0)
                    results[f"{n}_clients_digits"] = level(
                        port, payloads, n, args.seconds, args.pixel_images
                    )
                else:
                    results[f"{n}_clients"] = level(
                        port, payloads, n, args.seconds, args.pixel_images
                    )
        finally:
            server.terminate()
            server.wait(timeout=30)
    result = {
        "benchmark": "serve",
        "preset": args.preset,
        "photos": args.photos,
        "single_digit_photos": args.single_digit_photos,
        "readiness": ready,
        "serve_args": serve_args,
        "seconds_per_level": args.seconds,
        "pixel_request_bytes": len(payloads["pixels"]),
        "results": results,
        "machine": machine,
    }
    if args.json:
        print(json.dumps(result))
        return
    print(
        f"relunet serve {' '.join(serve_args)}; untrained --preset {args.preset}; "
        f"{args.seconds:g} s a level; {machine}"
    )
    if ready:
        print(
            f"ready {ready['seconds_start_to_ready']} s after start (the model's load "
            f"{ready['load_seconds']} s, then its warm-up {ready['warm_up_seconds']} s); "
            "first photo request "
            f"{ready['first_request_ms']} ms, p50 of the 90th-110th "
            f"{ready['requests_90_to_110_p50_ms']} ms"
        )
    for name, r in results.items():
        b, p = r["b64_png"], r["pixels"]
        print(
            f"{name:>11}: {r['requests_per_second']:7.1f} requests/s, {r['errors']} errors; "
            f"b64 p50 {b['p50_ms']} ms p99 {b['p99_ms']} ms max {b['max_ms']} ms, "
            f"{b['mean_requests_a_batch'] or 'not'} batched; "
            f"{p['requests']} pixel requests, p50 {p['p50_ms']} ms max {p['max_ms']} ms"
        )
        if r["errors"]:
            print(f"{'':>13}first error: {b['first_error'] or p['first_error']}")


if __name__ == "__main__":
    main()
