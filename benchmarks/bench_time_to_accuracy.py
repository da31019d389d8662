"""Time to accuracy: whole `relunet train --preset ...` runs, timed from process start.

    python benchmarks/bench_time_to_accuracy.py                       # fast98 and best, seeds 1 2 3
    python benchmarks/bench_time_to_accuracy.py --presets fast98 --seeds 1 --json

Each run is a fresh `relunet train` process, timed from just before it starts until
it has written metrics.json and exited: the Python and TensorFlow imports, reading
the prepared dataset, compiling, training, the test evaluation and the files are all
inside the time. The targets are the project's: fast98 reaches 98.0% test accuracy
in at most 30 s, best reaches 98.5% in at most 60 s. It also times how fast the
command answers when it has no training to do (`--help`, a bad flag).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time

TARGETS = {"fast98": (0.980, 30.0), "best": (0.985, 60.0)}  # (test accuracy, seconds)
_RELUNET = [sys.executable, "-m", "relunet.cli"]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--presets", nargs="+", default=list(TARGETS), choices=sorted(TARGETS))
    parser.add_argument("--seeds", nargs="+", type=int, default=[1, 2, 3])
    parser.add_argument(
        "--extra",
        nargs=argparse.REMAINDER,
        default=[],
        help="more flags for relunet train (e.g. a smaller split, for a smoke test)",
    )
    parser.add_argument("--json", action="store_true", help="print one JSON object")
    args = parser.parse_args()

    runs = []
    for preset in args.presets:
        for seed in args.seeds:
            runs.append(timed_run(preset, seed, args.extra))
            if not args.json:
                r = runs[-1]
                print(
                    f"{preset:>7} seed {seed}: test accuracy {r['test_accuracy']:.4f} in "
                    f"{r['seconds']:.1f} s ({'met' if r['met'] else 'MISSED'})",
                    flush=True,
                )
    result = {
        "benchmark": "time_to_accuracy",
        "targets": {p: {"test_accuracy": a, "seconds": s} for p, (a, s) in TARGETS.items()},
        "runs": runs,
        "all_met": all(r["met"] for r in runs),
        "startup_seconds": {
            "help": startup(["--help"]),
            "bad_flag": startup(["train", "--lr", "0"]),
        },
        "machine": f"{platform.machine()}, {os.cpu_count()} cores",
    }
    if args.json:
        print(json.dumps(result))
    else:
        print(f"all targets met: {result['all_met']}")
        print(
            f"start-up: relunet --help {result['startup_seconds']['help']:.2f} s, "
            f"relunet train --lr 0 {result['startup_seconds']['bad_flag']:.2f} s (median of 5)"
        )


def timed_run(preset: str, seed: int, extra: list[str]) -> dict:
    with tempfile.TemporaryDirectory(prefix="relunet-tta-") as tmp:
        run_dir = os.path.join(tmp, "run")
        start = time.perf_counter()
        done = subprocess.run(
            [
                *_RELUNET,
                "train",
                "--preset",
                preset,
                "--seed",
                str(seed),
                "--run-dir",
                run_dir,
                "--verbose",
                "0",
                *extra,
            ],
            capture_output=True,
            text=True,
        )
        seconds = time.perf_counter() - start
        if done.returncode != 0:
            raise SystemExit(f"relunet train --preset {preset} failed: {done.stderr[-2000:]}")
        with open(os.path.join(run_dir, "metrics.json")) as f:
            metrics = json.load(f)
    accuracy, limit = TARGETS[preset]
    return {
        "preset": preset,
        "seed": seed,
        "seconds": round(seconds, 2),
        "test_accuracy": metrics["test_accuracy"],
        "epochs": metrics["epochs_completed"],
        "met": metrics["test_accuracy"] >= accuracy and seconds <= limit,
    }


def startup(argv: list[str], repeats: int = 5) -> float:
    """Median seconds for `relunet ARGV` to answer when it trains nothing."""
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        subprocess.run([*_RELUNET, *argv], capture_output=True)
        times.append(time.perf_counter() - start)
    return round(statistics.median(times), 3)


if __name__ == "__main__":
    main()
