"""Training throughput of 1 vs 2 replicas: one device, Mirrored over two logical CPUs,
and MultiWorkerMirrored with two worker processes on localhost.

    python benchmarks/bench_distribute.py                  # train[:20000], 3 epochs
    python benchmarks/bench_distribute.py --json

Every configuration is a real `relunet train` run (the multi-worker one, two of them
with TF_CONFIG); throughput is the images per second of the last epoch, from the run's
history (the first epoch includes tracing). Under tf.distribute relunet trains without
XLA and with one step per execution (see relunet.training.distribute), so the one-device
run is also measured with those settings: that ratio shows what the replicas themselves
cost. On a machine with N cores the replicas share the N cores: expect no speed-up from
logical CPU replicas; they exist to test the distributed code path.
"""

from __future__ import annotations

import argparse
import csv
import json
import os
import platform
import socket
import subprocess
import sys
import tempfile

_RELUNET = [sys.executable, "-m", "relunet.cli", "train"]
CONFIGS = {
    "one device (XLA, 64 steps/execution)": [],
    "one device (no XLA, 1 step/execution)": ["--jit-compile", "off", "--steps-per-execution", "1"],
    "mirrored, 2 logical CPUs": ["--strategy", "mirrored", "--cpu-replicas", "2"],
    "multiworker, 2 processes": ["--strategy", "multiworker"],
}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--train-split", default="train[:20000]")
    parser.add_argument("--epochs", type=int, default=3)
    parser.add_argument("--json", action="store_true", help="print one JSON object")
    args = parser.parse_args()
    flags = [
        "--train-split",
        args.train_split,
        "--val-split",
        "none",
        "--test-split",
        "test[:1000]",
        "--epochs",
        str(args.epochs),
        "--verbose",
        "0",
    ]
    results = {}
    for name, extra in CONFIGS.items():
        results[name] = last_epoch_throughput(flags + extra)
        if not args.json:
            base = results[next(iter(CONFIGS))]
            print(
                f"{name:>40}: {results[name]:8.0f} images/s ({results[name] / base:.2f}x)",
                flush=True,
            )
    if args.json:
        print(
            json.dumps(
                {
                    "benchmark": "distribute",
                    "images_per_second": results,
                    "machine": f"{platform.machine()}, {os.cpu_count()} cores",
                }
            )
        )


def last_epoch_throughput(flags: list[str]) -> float:
    with tempfile.TemporaryDirectory(prefix="relunet-dist-") as tmp:
        run_dir = os.path.join(tmp, "run")
        command = [*_RELUNET, *flags, "--run-dir", run_dir]
        if "multiworker" in flags:
            codes = run_two_workers(command)
        else:
            codes = [subprocess.run(command, capture_output=True, text=True).returncode]
        if any(codes):
            raise SystemExit(f"{' '.join(command)} failed with {codes}")
        with open(os.path.join(run_dir, "history.csv"), newline="") as f:
            last = list(csv.DictReader(f))[-1]
        train_split = flags[flags.index("--train-split") + 1]
        return examples(train_split) / float(last["epoch_seconds"])


def run_two_workers(command: list[str]) -> list[int]:
    ports = []
    for _ in range(2):
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            ports.append(s.getsockname()[1])
    cluster = {"worker": [f"localhost:{p}" for p in ports]}
    workers = [
        subprocess.Popen(
            command,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            env=dict(
                os.environ,
                TF_CONFIG=json.dumps({"cluster": cluster, "task": {"type": "worker", "index": i}}),
            ),
        )
        for i in range(2)
    ]
    return [w.wait() for w in workers]


def examples(split: str) -> int:
    """Examples in a 'train[:N]' split (the only form this benchmark takes)."""
    return int(split.split("[:")[1].rstrip("]")) if "[:" in split else 60_000


if __name__ == "__main__":
    main()
