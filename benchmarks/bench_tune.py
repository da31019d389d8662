"""Benchmark `relunet tune`: a fixed search on full MNIST, in trials per hour.

    python benchmarks/bench_tune.py            # random search, 8 trials, 3 epochs each
    python benchmarks/bench_tune.py --json     # the same, as one JSON object

The search runs in a fresh temporary directory (nothing is exported), then the best
hyperparameters are retrained on the full train split and tested once, exactly as
`relunet tune` does. Trials per hour counts the search only; the retraining is
reported on its own.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import tempfile
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tuner", default="random")
    parser.add_argument("--max-trials", type=int, default=8)
    parser.add_argument("--epochs", type=int, default=3)
    parser.add_argument("--train-split", default="train[:90%]")
    parser.add_argument("--val-split", default="train[90%:]")
    parser.add_argument("--full-train-split", default="train")
    parser.add_argument("--test-split", default="test")
    parser.add_argument("--json", action="store_true", help="print one JSON object")
    args = parser.parse_args()

    from relunet.config import TuneConfig
    from relunet.trials import read_trials
    from relunet.tune import tune

    with tempfile.TemporaryDirectory(prefix="relunet-bench-tune-") as directory:
        config = TuneConfig(
            tuner=args.tuner,
            max_trials=args.max_trials,
            epochs=args.epochs,
            train_split=args.train_split,
            val_split=args.val_split,
            full_train_split=args.full_train_split,
            test_split=args.test_split,
            directory=directory,
            export_dir=None,
            verbose=0,
        )
        start = time.perf_counter()
        final = tune(config)
        total = time.perf_counter() - start
        rows = read_trials(os.path.join(directory, config.project_name))
    search_seconds = sum(r.seconds or 0 for r in rows)
    result = {
        "benchmark": "tune",
        "tuner": args.tuner,
        "trials": len(rows),
        "epochs_per_trial": args.epochs,
        "search_seconds": round(search_seconds, 1),
        "trials_per_hour": round(3600 * len(rows) / search_seconds, 1),
        "best_trial": final["trial_id"],
        "best_hyperparameters": final["hyperparameters"],
        "best_val_accuracy": final["val_accuracy"],
        "retrain_epochs": final["epochs"],
        "retrain_seconds": final["retrain_seconds"],
        "test_accuracy": final["test_accuracy"],
        "total_seconds": round(total, 1),
        "machine": f"{platform.machine()}, {os.cpu_count()} cores",
    }
    if args.json:
        print(json.dumps(result))
    else:
        for key, value in result.items():
            print(f"{key:>20}: {value}")


if __name__ == "__main__":
    main()
