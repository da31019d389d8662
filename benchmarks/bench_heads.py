"""`relunet serve` under clients that send huge request heads: resident memory before,
during and after, and what each client was answered.

    python benchmarks/bench_heads.py                          # 64 clients, a 100 MB header each
    python benchmarks/bench_heads.py --clients 16 --header-mb 50
    python benchmarks/bench_heads.py --src /work/main/src --clients 4 --header-mb 20

Starts a real `relunet serve` process on a free port of 127.0.0.1 serving an export of
an untrained `--preset best` network (bench_serve.py's), waits until it is ready and
sends it a few ordinary requests, then reads its resident set (VmRSS). Then every client
opens a connection at once and sends `GET /healthz` with one header line of the given
size, as a hostile client would: it goes on sending whatever the server answers, until
the server closes the connection (or all is sent), while a reader thread on the same
socket records the answer. Meanwhile the server's VmRSS is sampled every 20 ms (the
peak), and read again once every client is done (after). `--src` runs the server from
another source tree (the main branch, to see the unbounded head).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import socket
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request

from bench_serve import export_untrained

CHUNK = 1 << 20  # the client sends its head a megabyte at a time


def resident_mb(pid: int) -> float:
    """The process's resident set now, in MB (VmRSS)."""
    with open(f"/proc/{pid}/status") as status:
        for line in status:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    raise RuntimeError(f"no VmRSS for process {pid}")


def send_huge_head(port: int, size: int) -> dict:
    """One hostile client: `GET /healthz` with a header of `size` bytes, sent to the end
    (or until the server closes), its answer read meanwhile. {"status": the answer's
    status code or None, "sent": bytes sent, "seconds": until the answer came}."""
    head = b"GET /healthz HTTP/1.1\r\nHost: bench\r\nX-Huge: "
    line = memoryview(head + b"h" * size + b"\r\n\r\n")
    seen = {"status": None, "sent": 0, "seconds": None, "answer": b""}
    start = time.perf_counter()
    with socket.create_connection(("127.0.0.1", port)) as sock:
        sock.settimeout(60)

        def read() -> None:
            answer = b""
            try:
                while chunk := sock.recv(65536):
                    answer += chunk
                    if seen["seconds"] is None:
                        seen["seconds"] = time.perf_counter() - start
            except OSError:
                pass
            seen["answer"] = answer

        reader = threading.Thread(target=read)
        reader.start()
        try:
            for at in range(0, len(line), CHUNK):
                sock.sendall(line[at : at + CHUNK])
                seen["sent"] = at + len(line[at : at + CHUNK])
        except OSError:  # the server closed the connection: sent as much as it took
            pass
        reader.join(60)
    answer = seen.pop("answer")
    if answer.startswith(b"HTTP/1.1 "):
        seen["status"] = int(answer.split()[1])
        seen["error"] = json.loads(answer.partition(b"\r\n\r\n")[2] or b"{}").get("error")
    return seen


def huge_heads(port: int, pid: int, clients: int, size: int) -> dict:
    """Every client at once (`send_huge_head`); the server's VmRSS before, at its peak
    meanwhile and after, and each client's outcome."""
    before = resident_mb(pid)
    outcomes: list = [None] * clients
    done = threading.Event()
    peak = [before]

    def sample() -> None:
        while not done.is_set():
            peak[0] = max(peak[0], resident_mb(pid))
            time.sleep(0.02)

    sampler = threading.Thread(target=sample)
    sampler.start()
    start = time.perf_counter()

    def client(i: int) -> None:
        outcomes[i] = send_huge_head(port, size)

    threads = [threading.Thread(target=client, args=(i,)) for i in range(clients)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    seconds = time.perf_counter() - start
    time.sleep(0.5)  # the server's last closes
    done.set()
    sampler.join()
    return {
        "rss_mb_before": round(before, 1),
        "rss_mb_peak": round(peak[0], 1),
        "rss_mb_after": round(resident_mb(pid), 1),
        "seconds": round(seconds, 2),
        "statuses": sorted({str(o["status"]) for o in outcomes}),
        "answered": sum(o["status"] is not None for o in outcomes),
        "answer_seconds_max": max((o["seconds"] or 0) for o in outcomes),
        "mb_sent_min": round(min(o["sent"] for o in outcomes) / 1e6, 1),
        "mb_sent_max": round(max(o["sent"] for o in outcomes) / 1e6, 1),
        "error": next((o.get("error") for o in outcomes if o.get("error")), None),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--clients", type=int, default=64)
    parser.add_argument("--header-mb", type=float, default=100.0)
    parser.add_argument("--src", help="run the server from this source tree (PYTHONPATH)")
    parser.add_argument("--serve-args", default="", help="more flags for relunet serve")
    parser.add_argument("--json", action="store_true", help="one JSON line, nothing else")
    args = parser.parse_args()
    env = dict(os.environ)
    if args.src:
        env["PYTHONPATH"] = args.src
    with tempfile.TemporaryDirectory() as tmp:
        folder = os.path.join(tmp, "relunet")
        export_untrained(folder, "best")
        sock = socket.socket()
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
        sock.close()
        flags = args.serve_args.split()
        server = subprocess.Popen(
            [sys.executable, "-m", "relunet.cli", "serve", folder, "--port", str(port), *flags],
            env=env,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
        )
        try:
            base = f"http://127.0.0.1:{port}"
            deadline = time.monotonic() + 180
            while True:
                try:
                    with urllib.request.urlopen(f"{base}/readyz") as answer:
                        if answer.status == 200:
                            break
                except OSError:
                    pass
                if server.poll() is not None or time.monotonic() > deadline:
                    raise SystemExit(f"serve did not start: {server.stderr.read()[-2000:]}")
                time.sleep(0.2)
            for _ in range(20):
                urllib.request.urlopen(f"{base}/v1/models/relunet").close()
            result = huge_heads(port, server.pid, args.clients, int(args.header_mb * 1e6))
            result["server_alive_after"] = server.poll() is None
            if result["server_alive_after"]:
                with urllib.request.urlopen(f"{base}/healthz") as answer:
                    result["healthz_after"] = answer.status
        finally:
            server.terminate()
            server.wait(60)
    result.update(
        clients=args.clients,
        header_mb=args.header_mb,
        src=args.src or "this checkout",
        machine=f"{platform.machine()}, {os.cpu_count()} cores, Python {platform.python_version()}",
    )
    if args.json:
        print(json.dumps(result))
    else:
        for key, value in result.items():
            print(f"{key}: {value}")


if __name__ == "__main__":
    main()
