"""Time to accuracy: whole `relunet train --preset ...` processes, from start to exit.

    python benchmarks/bench_time_to_accuracy.py                  # fast98 and best, seeds 1 2 3
    python benchmarks/bench_time_to_accuracy.py --presets fast98 --seeds 1 --json

The budget is relative to this machine's own start-up cost, measured in the same run:
T is the time of `python -c "import tensorflow"` (median of 3). Targets: fast98 reaches
98.0% test accuracy within T + 8 s, best reaches 98.5% within T + 15 s, for every
seed. Each run is a fresh process, timed from just before it is spawned until it has
exited; its phases come from the timeline `relunet train` writes into metrics.json
(time.time() marks), so the overhead around training is visible:

  imports   spawn -> TensorFlow and relunet imported (Python start-up included)
  data      -> the splits in memory
  compile   -> the first steps_per_execution chunk done (XLA compilation and 64 steps)
  train     -> the last epoch done
  evaluate  -> the test split evaluated
  write     -> metrics.json written
  exit      -> the process gone
It also times the command's answer when it has nothing to train (`--help`, a bad flag).
"""

from __future__ import annotations

import argparse
import itertools
import json
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time

TARGETS = {"fast98": (0.980, 8.0), "best": (0.985, 15.0)}  # (test accuracy, seconds over T)
PHASES = ("imports", "data", "first_chunk", "trained", "evaluated", "written")
_RELUNET = [sys.executable, "-m", "relunet.cli"]


def import_seconds(module: str = "tensorflow", repeats: int = 3) -> float:
    """T: a fresh `python -c "import <module>"`, start to exit, median of `repeats`."""
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        subprocess.run([sys.executable, "-c", f"import {module}"], check=True, capture_output=True)
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def timed_run(preset: str, seed: int, extra: list[str]) -> dict:
    """One `relunet train --preset` process: accuracy, seconds, and its phases."""
    with tempfile.TemporaryDirectory(prefix="relunet-tta-") as tmp:
        run_dir = os.path.join(tmp, "run")
        command = [
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
        ]
        spawned, start = time.time(), time.perf_counter()
        done = subprocess.run(command, capture_output=True, text=True)
        seconds, ended = time.perf_counter() - start, time.time()
        if done.returncode != 0:
            raise SystemExit(f"relunet train --preset {preset} failed: {done.stderr[-2000:]}")
        with open(os.path.join(run_dir, "metrics.json")) as f:
            metrics = json.load(f)
        written = os.path.getmtime(os.path.join(run_dir, "metrics.json"))
    marks = {**metrics["timeline"], "written": written, "exited": ended}
    points = ["spawned", *PHASES, "exited"]
    marks["spawned"] = spawned
    phases = {
        f"{a}->{b}": round(marks[b] - marks[a], 2)
        for a, b in itertools.pairwise(points)
        if marks.get(a) and marks.get(b)
    }
    return {
        "preset": preset,
        "seed": seed,
        "test_accuracy": metrics["test_accuracy"],
        "seconds": round(seconds, 2),
        "phases": phases,
    }


def startup(args: list[str], repeats: int = 5) -> float:
    """Median seconds for the command to answer without training (no TensorFlow import)."""
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        subprocess.run([*_RELUNET, *args], capture_output=True)
        times.append(time.perf_counter() - start)
    return round(statistics.median(times), 3)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--presets", nargs="+", default=list(TARGETS), choices=sorted(TARGETS))
    parser.add_argument("--seeds", nargs="+", type=int, default=[1, 2, 3])
    parser.add_argument(
        "--extra",
        nargs=argparse.REMAINDER,
        default=[],
        help="more flags for relunet train (a smaller split, for a smoke test)",
    )
    parser.add_argument("--json", action="store_true", help="print one JSON object")
    args = parser.parse_args()

    t = import_seconds()
    if not args.json:
        print(f"T = python -c 'import tensorflow': {t:.2f} s", flush=True)
    runs = []
    for preset in args.presets:
        accuracy, budget = TARGETS[preset]
        for seed in args.seeds:
            run = timed_run(preset, seed, args.extra)
            run["over_t"] = round(run["seconds"] - t, 2)
            run["met"] = run["test_accuracy"] >= accuracy and run["over_t"] <= budget
            runs.append(run)
            if not args.json:
                print(
                    f"{preset:>7} seed {seed}: {run['test_accuracy']:.4f} in "
                    f"{run['seconds']:.1f} s "
                    f"= T + {run['over_t']:.1f} s ({'met' if run['met'] else 'MISSED'}); "
                    + ", ".join(f"{k} {v:.2f}" for k, v in run["phases"].items()),
                    flush=True,
                )
    result = {
        "benchmark": "time_to_accuracy",
        "import_tensorflow_seconds": round(t, 2),
        "targets": {p: {"test_accuracy": a, "seconds_over_t": s} for p, (a, s) in TARGETS.items()},
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
        return
    print(f"all targets met: {result['all_met']}")
    print(
        f"start-up: relunet --help {result['startup_seconds']['help']:.2f} s, "
        f"relunet train --lr 0 {result['startup_seconds']['bad_flag']:.2f} s (median of 5)"
    )


if __name__ == "__main__":
    main()
