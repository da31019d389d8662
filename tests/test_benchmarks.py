"""Smoke tests of the benchmark scripts: tiny sizes, the output's shape, never the speed."""

import json
import subprocess
import sys
from pathlib import Path

BENCHMARKS = Path(__file__).resolve().parents[1] / "benchmarks"


def _run_json(script, *args):
    result = subprocess.run(
        [sys.executable, str(BENCHMARKS / script), "--json", *args],
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert result.returncode == 0, result.stderr[-2000:]
    return json.loads(result.stdout.strip().splitlines()[-1])


def test_bench_tune_reports_trials_per_hour_and_test_accuracy(source):
    result = _run_json(
        "bench_tune.py",
        "--max-trials",
        "2",
        "--epochs",
        "1",
        "--train-split",
        "train[:300]",
        "--val-split",
        "train[50000:50200]",
        "--full-train-split",
        "train[:300]",
        "--test-split",
        "test[:200]",
    )
    assert result["trials"] == 2 and result["trials_per_hour"] > 0
    assert 0 <= result["test_accuracy"] <= 1
    assert set(result["best_hyperparameters"]) == {"learning_rate", "width"}


def test_bench_train_reports_both_models_and_the_compute_limit(source):
    result = _run_json("bench_train.py", "--train-split", "train[:1000]", "--epochs", "2")
    assert set(result["samples_per_second"]) == {"stock_keras", "relunet"}
    assert all(len(v) == 2 for v in result["samples_per_second"].values())
    assert result["ratio"] > 0 and result["flops_per_sample"] == 1_211_392
    assert result["matmul_gflops"] > 0 and result["fraction_of_limit"]["relunet"] > 0


def test_bench_pipeline_reports_headroom_and_cache_size(source):
    result = _run_json(
        "bench_pipeline.py", "--train-split", "train[:1000]", "--rounds", "1", "--skip-rss"
    )
    assert result["train_examples"] == 1000 and result["headroom"] > 0
    assert result["cache_bytes"] == 1000 * (784 + 4)
    assert result["train_peak_rss_mb"] is None


def test_bench_time_to_accuracy_times_a_whole_run(source):
    result = _run_json(
        "bench_time_to_accuracy.py",
        "--presets",
        "fast98",
        "--seeds",
        "1",
        "--extra",
        "--train-split",
        "train[:500]",
        "--test-split",
        "test[:200]",
        "--epochs",
        "1",
    )
    (run,) = result["runs"]
    assert run["preset"] == "fast98" and run["epochs"] == 1 and run["seconds"] > 0
    assert 0 <= run["test_accuracy"] <= 1 and isinstance(run["met"], bool)
    assert 0 < result["startup_seconds"]["help"] < 60


def test_bench_serving_reports_latency_percentiles_and_throughput():
    result = _run_json("bench_serving.py", "--calls", "20", "--batches", "2")
    assert 0 < result["batch1_p50_ms"] <= result["batch1_p99_ms"]
    assert result["batch1024_images_per_second"] > 0


def test_bench_distribute_reports_every_configuration(source):
    result = _run_json("bench_distribute.py", "--train-split", "train[:1000]", "--epochs", "2")
    assert len(result["images_per_second"]) == 4
    assert all(v > 0 for v in result["images_per_second"].values())
