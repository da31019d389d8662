"""Benchmark `relunet tune` against the hand-made `--preset best`, on the same seeds.

    python benchmarks/bench_tune.py            # the documented search, then both retrained
    python benchmarks/bench_tune.py --json     # the same, as one JSON object
    python benchmarks/bench_tune.py --smoke    # tiny slices: checks the script, not the claim
    python benchmarks/bench_tune.py --memory   # resident memory after each of 100 small trials

1. One `relunet tune` process runs the search below in a fresh temporary directory,
   timed from its start to its exit (the budget: at most 30 minutes on the 2-core
   machine). Trials train on train[:90%] and are judged on train[90%:]; the winner is
   retrained on all of train and tested once, and tune prints the `relunet train`
   command that does it.
2. That printed command is run again for each seed, and so are `relunet train --preset
   best --seed S` and the former best recipe (8 epochs at 2e-3, until relunet 0.2): all
   tested on the full test split, which the search never saw.

`--memory` instead runs one `relunet tune` process of `--max-trials` (100) small trials
(512 training images, 1 epoch, width `--width`, 16 by default) and reads the resident
memory each trial recorded as it ended (`memory_mb` in its relunet_trial.json). The
benchmark also samples the process's resident memory itself, from /proc, whenever a
trial's record appears, so the same script measures a relunet that records nothing
(run it with PYTHONPATH pointing at an older checkout). Growth is the least-squares
slope over trials 11 to the last, in MB a trial; the goal is at most 1.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import re
import shlex
import subprocess
import sys
import tempfile
import time
from pathlib import Path

# The search (the second one tried; the first, over depth 1-4, widths 384-1536, epochs
# 1-16 and learning rates 8e-4 to 6e-3 in 20 trials, found a winner no better than
# --preset best: benchmarks/README.md has both). The presets' levers are fixed where
# they are known to help (He init, cosine, label smoothing, two hidden layers); width,
# learning rate, batch size and epochs are searched in the region of the wide, long
# trainings; XLA is on because trials run many epochs; no early stopping, since the
# cosine schedule does its best work in the last epochs.
SEARCH = shlex.split(
    "--tuner random --search learning_rate,width,batch_size,epochs --lr-min 0.001 "
    "--lr-max 0.003 --width-min 768 --width-max 1280 --epochs-min 10 --depth 2 "
    "--init he_normal --lr-schedule cosine --label-smoothing 0.1 --jit-compile on "
    "--patience 100"
)


# --smoke: slices small enough for the test suite (the retrain command carries its own).
SMOKE_SPLITS = [
    "--train-split",
    "train[:600]",
    "--val-split",
    "train[50000:50300]",
    "--full-train-split",
    "train[:1000]",
    "--test-split",
    "test[:500]",
    "--width-min",
    "32",
    "--width-max",
    "64",
]
SMOKE_TRAIN = ["--train-split", "train[:1000]", "--test-split", "test[:500]", "--epochs", "1"]


# What the winner must beat: --preset best, and the stronger (slower) recipe it was
# until relunet 0.2 (8 epochs at 2e-3).
REFERENCES = {
    "preset_best": ["--preset", "best"],
    "former_best": ["--preset", "best", "--epochs", "8", "--lr", "0.002"],
}


def relunet(*args: str) -> list[str]:
    return [sys.executable, "-m", "relunet.cli", *args]


def run(command: list[str], timeout: float) -> tuple[str, float]:
    start = time.perf_counter()
    done = subprocess.run(command, capture_output=True, text=True, timeout=timeout)
    if done.returncode:
        raise SystemExit(f"{shlex.join(command)} failed:\n{done.stderr[-3000:]}")
    return done.stdout, time.perf_counter() - start


def test_accuracy(command: list[str], run_dir: str) -> float:
    run([*command, "--run-dir", run_dir, "--verbose", "0"], timeout=1800)
    with open(os.path.join(run_dir, "metrics.json")) as f:
        return json.load(f)["test_accuracy"]


def without_flag(args: list[str], flag: str) -> list[str]:
    """`args` less `flag` and its value."""
    if flag not in args:
        return args
    at = args.index(flag)
    return args[:at] + args[at + 2 :]


# --memory: trials as small as a trial gets, so the growth is not hidden by their size.
MEMORY_SEARCH = [
    "--train-split",
    "train[:512]",
    "--val-split",
    "train[50000:50256]",
    "--full-train-split",
    "train[:512]",
    "--test-split",
    "test[:256]",
    "--epochs",
    "1",
    "--verbose",
    "0",
]


def resident_mb(pid: int) -> float | None:
    try:
        with open(f"/proc/{pid}/statm") as statm:
            return int(statm.read().split()[1]) * os.sysconf("SC_PAGE_SIZE") / 2**20
    except (OSError, ValueError, IndexError):
        return None


def slope(values: list[float]) -> float | None:
    """Least-squares growth per trial of `values` (one per trial)."""
    n = len(values)
    if n < 2:
        return None
    mean_x, mean_y = (n - 1) / 2, sum(values) / n
    num = sum((i - mean_x) * (v - mean_y) for i, v in enumerate(values))
    return num / sum((i - mean_x) ** 2 for i in range(n))


def memory(max_trials: int, width: int) -> dict:
    """Resident memory after each trial of one `relunet tune` process of small trials."""
    with tempfile.TemporaryDirectory(prefix="relunet-bench-tune-memory-") as tmp:
        project = Path(tmp, "tuning", "relunet")
        command = relunet(
            "tune",
            *MEMORY_SEARCH,
            "--width-min",
            str(width),
            "--width-max",
            str(width),
            "--max-trials",
            str(max_trials),
            "--directory",
            str(project.parent),
        )
        start = time.perf_counter()
        log = open(os.path.join(tmp, "tune.log"), "w+b")  # noqa: SIM115 (closed below)
        process = subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT)
        sampled: dict[str, float | None] = {}
        while process.poll() is None:
            for record in project.glob("trial_*/relunet_trial.json"):
                trial = record.parent.name
                if trial not in sampled:
                    sampled[trial] = resident_mb(process.pid)
            time.sleep(0.05)
        log.seek(0)
        output = log.read().decode(errors="replace")
        log.close()
        if process.returncode:
            raise SystemExit(f"{shlex.join(command)} failed:\n{output[-3000:]}")
        seconds = time.perf_counter() - start
        trials = sorted(project.glob("trial_*/relunet_trial.json"), key=lambda p: p.parent.name)
        recorded = [json.loads(p.read_text()).get("memory_mb") for p in trials]
    in_order = [sampled.get(p.parent.name) for p in trials]

    def figures(values: list) -> dict:
        if not values or any(v is None for v in values):
            return {}
        return {
            "first_trial_mb": round(values[0], 1),
            "after_10_mb": round(values[min(9, len(values) - 1)], 1),
            f"after_{len(values)}_mb": round(values[-1], 1),
            "growth_mb_per_trial_after_10": round(slope(values[10:]) or 0.0, 3),
            "max_mb": round(max(values), 1),
        }

    return {
        "benchmark": "tune --memory",
        "search": shlex.join(["relunet", "tune", *command[4:]]),
        "trials": len(trials),
        "width": width,
        "seconds_start_to_exit": round(seconds, 1),
        "recorded_by_tune": figures(recorded),
        "sampled_from_outside": figures(in_order),
        "recorded_mb_by_trial": recorded,
        "machine": f"{platform.machine()}, {os.cpu_count()} cores",
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--max-trials", type=int, default=12)
    parser.add_argument("--max-epochs", type=int, default=16)
    parser.add_argument("--seeds", default="1,2,3")
    parser.add_argument("--smoke", action="store_true", help="2 trials of 1 epoch on slices")
    parser.add_argument("--json", action="store_true", help="print one JSON object")
    parser.add_argument("--memory", action="store_true", help="memory over --max-trials trials")
    parser.add_argument("--trials", type=int, default=100, help="--memory: trials in all")
    parser.add_argument("--width", type=int, default=16, help="--memory: the trials' width")
    args = parser.parse_args()
    if args.memory:
        result = memory(args.trials, args.width)
        if args.json:
            print(json.dumps(result))
            return
        for key, value in result.items():
            if key != "recorded_mb_by_trial":
                print(f"{key:>36}: {value}")
        return
    seeds = [int(s) for s in args.seeds.split(",")]
    if args.smoke:
        args.max_trials, args.max_epochs, seeds = 2, 1, seeds[:1]
        SEARCH[SEARCH.index("--epochs-min") + 1] = "1"
    data = SMOKE_SPLITS if args.smoke else []

    with tempfile.TemporaryDirectory(prefix="relunet-bench-tune-") as tmp:
        search = [
            *SEARCH,
            *data,
            "--max-trials",
            str(args.max_trials),
            "--epochs",
            str(args.max_epochs),
            "--directory",
            os.path.join(tmp, "tuning"),
            "--verbose",
            "0",
        ]
        out, seconds = run(relunet("tune", *search), timeout=3600)
        command = re.search(r"Reproduce it with: (relunet train .*)$", out, re.M)[1]
        with open(os.path.join(tmp, "tuning", "relunet", "relunet_final.json")) as f:
            final = json.load(f)
        tuned_args = without_flag(shlex.split(command)[2:], "--seed")
        recipes = {"tuned": tuned_args, **REFERENCES}
        accuracy = {name: {} for name in recipes}
        for seed in seeds:
            for name, recipe in recipes.items():
                flags = [*recipe, *(SMOKE_TRAIN if args.smoke and name != "tuned" else [])]
                accuracy[name][seed] = test_accuracy(
                    relunet("train", *flags, "--seed", str(seed)),
                    os.path.join(tmp, f"{name}-{seed}"),
                )
        tuned = accuracy.pop("tuned")
    result = {
        "benchmark": "tune",
        "search": shlex.join(
            [
                "relunet",
                "tune",
                *SEARCH,
                "--max-trials",
                str(args.max_trials),
                "--epochs",
                str(args.max_epochs),
            ]
        ),
        "search_seconds_start_to_exit": round(seconds, 1),
        "best_trial": final["trial"],
        "best_hyperparameters": final["hyperparameters"],
        "best_val_accuracy": final["val_accuracy"],
        "retrain_command": command,
        "retrain_test_accuracy": final["test_accuracy"],
        "tuned_test_accuracy_by_seed": tuned,
        **{f"{name}_test_accuracy_by_seed": by_seed for name, by_seed in accuracy.items()},
        "tuned_beats_both_on_every_seed": all(
            tuned[s] > by_seed[s] for by_seed in accuracy.values() for s in seeds
        ),
        "machine": f"{platform.machine()}, {os.cpu_count()} cores",
    }
    if args.json:
        print(json.dumps(result))
        return
    for key, value in result.items():
        print(f"{key:>36}: {value}")


if __name__ == "__main__":
    main()
