"""`relunet serve` over HTTP: requests per second and latency at 1 and 8 concurrent clients.

    python benchmarks/bench_serve.py          # a fresh default model, 400 requests a level
    python benchmarks/bench_serve.py --json

Starts a real `relunet serve` process on a free port of 127.0.0.1, then fires a fixed
number of POST :predict requests at it from 1 and from 8 client threads, each request
one MNIST-sized digit, in two bodies: pixels as `instances` (signature serving_default)
and a PNG as `{"b64": ...}` (serving_bytes). Latency is each request's round trip
(p50 and p99); requests per second is the count over the level's wall time. The
weights do not change the cost, so a built, untrained default model is exported.
"""

from __future__ import annotations

import argparse
import base64
import json
import os
import platform
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request

import numpy as np


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def bodies() -> dict[str, bytes]:
    """One digit as pixels, and as a PNG, in TF Serving's row format."""
    import zlib

    rng = np.random.default_rng(0)
    digit = (rng.random((28, 28)) > 0.8).astype(np.uint8) * 255
    raw = b"".join(b"\x00" + row.tobytes() for row in digit)  # a grayscale PNG, by hand

    def chunk(kind: bytes, data: bytes) -> bytes:
        return (
            len(data).to_bytes(4, "big") + kind + data + zlib.crc32(kind + data).to_bytes(4, "big")
        )

    png = (
        b"\x89PNG\r\n\x1a\n"
        + chunk(b"IHDR", (28).to_bytes(4, "big") * 2 + b"\x08\x00\x00\x00\x00")
        + chunk(b"IDAT", zlib.compress(raw))
        + chunk(b"IEND", b"")
    )
    return {
        "pixels": json.dumps({"instances": [digit[..., None].tolist()]}).encode(),
        "b64_png": json.dumps(
            {
                "signature_name": "serving_bytes",
                "instances": [{"b64": base64.b64encode(png).decode()}],
            }
        ).encode(),
    }


def level(url: str, body: bytes, clients: int, requests: int) -> dict:
    """`requests` POSTs shared by `clients` threads: rate and latency percentiles."""
    latencies, lock = [], threading.Lock()
    per_client = [requests // clients + (i < requests % clients) for i in range(clients)]

    def client(count: int) -> None:
        for _ in range(count):
            start = time.perf_counter()
            request = urllib.request.Request(
                url, data=body, headers={"Content-Type": "application/json"}
            )
            with urllib.request.urlopen(request, timeout=60) as response:
                response.read()
            with lock:
                latencies.append(time.perf_counter() - start)

    threads = [threading.Thread(target=client, args=(n,)) for n in per_client]
    start = time.perf_counter()
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    wall = time.perf_counter() - start
    ms = sorted(1000 * x for x in latencies)
    return {
        "requests": len(ms),
        "requests_per_second": round(len(ms) / wall, 1),
        "p50_ms": round(statistics.median(ms), 2),
        "p99_ms": round(ms[min(len(ms) - 1, int(0.99 * len(ms)))], 2),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--requests", type=int, default=400, help="requests per level")
    parser.add_argument("--json", action="store_true", help="print one JSON object")
    args = parser.parse_args()

    with tempfile.TemporaryDirectory(prefix="relunet-bench-serve-") as tmp:
        folder = os.path.join(tmp, "relunet")
        subprocess.run(
            [
                sys.executable,
                "-c",
                "from relunet.model import build_model; "
                "from relunet.export import export_saved_model; "
                f"export_saved_model(build_model(), {folder!r}, verbose=False)",
            ],
            check=True,
            capture_output=True,
        )
        port = free_port()
        server = subprocess.Popen(
            [sys.executable, "-m", "relunet.cli", "serve", folder, "--port", str(port)],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
            text=True,
        )
        try:
            base = f"http://127.0.0.1:{port}/v1/models/relunet"
            deadline = time.monotonic() + 120
            while True:
                try:
                    urllib.request.urlopen(base, timeout=5).read()
                    break
                except OSError:
                    if server.poll() is not None or time.monotonic() > deadline:
                        raise SystemExit(f"serve did not start: {server.stderr.read()}") from None
                    time.sleep(0.2)
            results = {}
            for name, body in bodies().items():
                level(f"{base}:predict", body, 1, 20)  # warm-up: tracing, first calls
                results[name] = {
                    f"{clients}_clients": level(f"{base}:predict", body, clients, args.requests)
                    for clients in (1, 8)
                }
        finally:
            server.terminate()
            server.wait(timeout=30)
    result = {
        "benchmark": "serve",
        "results": results,
        "machine": f"{platform.machine()}, {os.cpu_count()} cores",
    }
    if args.json:
        print(json.dumps(result))
        return
    for name, by_level in results.items():
        for clients, r in by_level.items():
            print(
                f"{name:>8}, {clients:>10}: {r['requests_per_second']:8.1f} requests/s, "
                f"p50 {r['p50_ms']:.2f} ms, p99 {r['p99_ms']:.2f} ms ({r['requests']} requests)"
            )


if __name__ == "__main__":
    main()
