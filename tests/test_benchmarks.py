"""Smoke tests of the benchmark scripts: tiny sizes, the output's shape, never the speed."""

import json
import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = pytest.mark.slow  # real processes, minutes: the full suite's

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


def test_bench_tune_compares_the_tuned_winner_with_preset_best_by_seed(source):
    result = _run_json("bench_tune.py", "--smoke", "--seeds", "1")
    assert result["retrain_command"].startswith("relunet train ")
    assert set(result["tuned_test_accuracy_by_seed"]) == {"1"}
    assert 0 < result["preset_best_test_accuracy_by_seed"]["1"] <= 1
    assert 0 < result["former_best_test_accuracy_by_seed"]["1"] <= 1
    assert result["search_seconds_start_to_exit"] > 0


def test_bench_train_reports_every_trainer_and_the_hardware_limit(source):
    result = _run_json("bench_train.py", "--train-split", "train[:1000]", "--epochs", "1")
    assert {"stock_keras", "relunet"} <= set(result["samples_per_second"])
    assert all(len(v) == 1 for v in result["samples_per_second"].values())
    assert result["relunet_over_stock_keras"] > 0 and result["flops_per_sample"] == 1_211_392
    assert result["gemm_gflops"]["tensorflow_xla"] > 0
    assert result["hardware_limit_samples_per_second"] > 0


def test_bench_pipeline_reports_headroom_and_cache_size(source):
    result = _run_json(
        "bench_pipeline.py", "--train-split", "train[:1000]", "--rounds", "1", "--skip-rss"
    )
    assert result["train_examples"] == 1000 and result["headroom"] > 0
    assert result["cache_bytes"] == 1000 * (784 + 4)
    assert result["train_peak_rss_mb"] is None
    for name in ("none", "robust", "every"):
        assert result[f"pipeline_{name}_augmentation_samples_per_second"] > 0
    for name in ("none", "robust"):
        assert result[f"robust_network_trains_{name}_augmentation_samples_per_second"] > 0


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
    assert run["preset"] == "fast98" and run["seconds"] > 0
    assert 0 <= run["test_accuracy"] <= 1 and isinstance(run["met"], bool)
    assert result["import_tensorflow_seconds"] > 0
    assert list(run["phases"]) == [
        "spawned->imports",
        "imports->data",
        "data->first_chunk",
        "first_chunk->trained",
        "trained->evaluated",
        "evaluated->written",
        "written->exited",
    ]
    assert abs(sum(run["phases"].values()) - run["seconds"]) < 0.5  # the phases fill the run
    assert 0 < result["startup_seconds"]["help"] < 60


def test_bench_serving_reports_latency_percentiles_and_throughput():
    result = _run_json("bench_serving.py", "--calls", "20", "--batches", "2")
    assert 0 < result["batch1_p50_ms"] <= result["batch1_p99_ms"]
    assert result["batch1024_images_per_second"] > 0


def test_bench_distribute_reports_every_configuration(source):
    result = _run_json("bench_distribute.py", "--train-split", "train[:1000]", "--epochs", "2")
    assert len(result["images_per_second"]) == 4
    assert all(v > 0 for v in result["images_per_second"].values())


def test_bench_serve_reports_rates_latencies_and_errors_at_each_level(mnist_dir):
    result = _run_json(
        "bench_serve.py",
        "--clients",
        "1,2",
        "--seconds",
        "1",
        "--pixel-images",
        "10",
        "--photos",
        "4",
        "--single-digit-photos",
    )
    levels = {f"{n}_clients_{kind}" for n in (1, 2) for kind in ("photos", "digits")}
    assert set(result["results"]) == levels
    for name, measured in result["results"].items():
        assert measured["errors"] == 0 and measured["requests_per_second"] > 0
        b64, pixels = measured["b64_png"], measured["pixels"]
        assert b64["requests"] > 0 and 0 < b64["p50_ms"] <= b64["p99_ms"] <= b64["max_ms"]
        if name.endswith("digits"):
            assert pixels["requests"] >= 1 and pixels["errors"] == 0
    ready = result["readiness"]
    assert ready["seconds_start_to_ready"] > 0 and ready["first_request_ms"] > 0
    assert 0 < ready["load_seconds"] + ready["warm_up_seconds"] < ready["seconds_start_to_ready"]
    readers = _run_json("bench_serve.py", "--decoders", "--pixel-images", "10")["ms"]
    assert {"json + np.asarray", "relunet (NumPy on the text)"} <= set(readers)
    costs = _run_json("bench_serve.py", "--calls")["ms_per_image"]
    assert set(costs) == {"serving_bytes", "serving_default"}
    assert all(ms > 0 for by_size in costs.values() for ms in by_size.values())


def test_bench_real_digits_scores_each_model_on_mnist_and_on_handwriting_it_never_saw(source):
    result = _run_json(
        "bench_real_digits.py",
        "--presets",
        "lab",
        "--extra",
        "--train-split",
        "train[:500]",
        "--test-split",
        "test[:200]",
        "--epochs",
        "1",
    )
    (row,) = result["rows"]
    assert row["preset"] == "lab" and row["seed"] == 1 and row["real_digits"] == 1797
    assert 0 <= row["mnist_test_accuracy"] <= 1 and 0 <= row["real_digits_accuracy"] <= 1
    assert row["train_seconds_start_to_exit"] > 0
