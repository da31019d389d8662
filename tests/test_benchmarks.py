"""Smoke tests of the benchmark scripts: tiny sizes, the output's shape, never the speed."""

import json
import subprocess
import sys
from pathlib import Path

BENCHMARKS = Path(__file__).resolve().parents[1] / "benchmarks"


def _run_json(script, *args):
    result = subprocess.run([sys.executable, str(BENCHMARKS / script), "--json", *args],
                            capture_output=True, text=True, timeout=600)
    assert result.returncode == 0, result.stderr[-2000:]
    return json.loads(result.stdout.strip().splitlines()[-1])


def test_bench_tune_reports_trials_per_hour_and_test_accuracy(source):
    result = _run_json("bench_tune.py", "--max-trials", "2", "--epochs", "1",
                       "--train-split", "train[:300]", "--val-split", "train[50000:50200]",
                       "--full-train-split", "train[:300]", "--test-split", "test[:200]")
    assert result["trials"] == 2 and result["trials_per_hour"] > 0
    assert 0 <= result["test_accuracy"] <= 1
    assert set(result["best_hyperparameters"]) == {"learning_rate", "width"}
