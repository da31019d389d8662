"""relunet train under tf.distribute: Mirrored over logical CPUs, MultiWorkerMirrored on
localhost, and a multi-worker job that loses a worker and resumes.

Each strategy needs a fresh TensorFlow (logical devices and the multi-worker runtime
are set up before anything runs), so every case runs in its own processes.
"""

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
from helpers import free_ports, run_cli

from relunet.training.distribute import scratch_dir
from relunet.training.model import load_model

pytestmark = pytest.mark.slow  # real processes, minutes: the full suite's

# Tolerances on the final weights of 1 vs 2 replicas (observed: SGD 3e-8, Adam 8e-8,
# both after 22 steps; the replicas sum their partial gradients in another order).
SGD_ATOL, ADAM_ATOL = 1e-6, 1e-5

# Trains 2 epochs of train[:631] at batch 63 (11 steps an epoch: 32 + 31 images per
# replica, and a last batch of one image, so one replica gets none) on one device and
# on two logical CPUs, then prints both runs' weights and histories.
COMPARE_SCRIPT = r"""
import json, sys
import numpy as np
from relunet.config import ModelConfig, OptimConfig, TrainConfig
from relunet import data
from relunet.training import distribute
mirrored = distribute.make_strategy(TrainConfig(strategy="mirrored", cpu_replicas=2))
import keras
import tensorflow as tf
from relunet.training.model import build_model

source = data.find_source("mnist", None, None)
(arrays,) = [data.load_arrays(d) for d in data.load_tfds(source, ["train[:631]"])]

def run(strategy):
    with strategy.scope():
        keras.utils.set_random_seed(7)
        optimizer = (keras.optimizers.SGD(0.1) if sys.argv[1] == "sgd"
                     else keras.optimizers.Adam(1e-3))
        model = build_model(
            ModelConfig(width=64), OptimConfig(jit_compile="off"), optimizer=optimizer
        )
    pipeline = data.PipelineConfig(batch_size=63, seed=7)
    batches = distribute.shard_by_data(data.training_pipeline(arrays, pipeline))
    history = model.fit(batches, epochs=2, verbose=0, shuffle=False)
    assert int(keras.ops.convert_to_numpy(model.optimizer.iterations)) == 2 * 11
    return [v.numpy().tolist() for v in model.trainable_variables], history.history

single, mirror = run(tf.distribute.get_strategy()), run(mirrored)
print(json.dumps({"replicas": mirrored.num_replicas_in_sync, "single": single, "mirrored": mirror}))
"""


@pytest.mark.parametrize("optimizer, atol", [("sgd", SGD_ATOL), ("adam", ADAM_ATOL)])
def test_mirrored_over_two_cpus_matches_one_device(source, optimizer, atol):
    result = subprocess.run(
        [sys.executable, "-c", COMPARE_SCRIPT, optimizer],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    out = json.loads(result.stdout.strip().splitlines()[-1])
    assert out["replicas"] == 2
    (single_weights, single_history), (mirrored_weights, mirrored_history) = (
        out["single"],
        out["mirrored"],
    )
    for a, b in zip(single_weights, mirrored_weights, strict=True):
        np.testing.assert_allclose(np.array(b), np.array(a), rtol=0, atol=atol)
    assert mirrored_history["accuracy"] == single_history["accuracy"]
    np.testing.assert_allclose(mirrored_history["loss"], single_history["loss"], rtol=1e-6)
    assert all(np.isfinite(mirrored_history["loss"]))  # the replica with no images too


# -- multi-worker on localhost ------------------------------------------------------

SMALL = [
    "--train-split",
    "train[:3000]",
    "--val-split",
    "train[50000:50500]",
    "--test-split",
    "test[:500]",
    "--batch-size",
    "64",
    "--width",
    "64",
    "--verbose",
    "2",
]


def _start_workers(run_dir: Path, flags: list[str], logs: Path) -> list[subprocess.Popen]:
    """Both workers of a two-worker cluster on localhost, each with its TF_CONFIG."""
    cluster = {"worker": [f"localhost:{port}" for port in free_ports(2)]}
    logs.mkdir(exist_ok=True)
    workers = []
    for index in range(2):
        env = dict(
            os.environ,
            TF_CONFIG=json.dumps({"cluster": cluster, "task": {"type": "worker", "index": index}}),
        )
        with open(logs / f"worker{index}-{time.monotonic_ns()}.log", "w") as log:
            workers.append(
                subprocess.Popen(
                    [
                        sys.executable,
                        "-m",
                        "relunet.cli",
                        "train",
                        "--strategy",
                        "multiworker",
                        "--run-dir",
                        str(run_dir),
                        *flags,
                    ],
                    env=env,
                    stdout=log,
                    stderr=subprocess.STDOUT,
                    text=True,
                )
            )
    return workers


def _wait(workers: list[subprocess.Popen], timeout: float = 240) -> list[int]:
    deadline = time.monotonic() + timeout
    codes = []
    for worker in workers:
        try:
            codes.append(worker.wait(timeout=max(1, deadline - time.monotonic())))
        except subprocess.TimeoutExpired:
            worker.kill()
            codes.append(worker.wait())
    return codes


def _log_text(logs: Path, index: int) -> str:
    return "\n".join(p.read_text() for p in sorted(logs.glob(f"worker{index}-*.log")))


def test_two_workers_on_localhost_train_like_one_device_and_only_the_chief_writes(source, tmp_path):
    run_dir, logs = tmp_path / "run", tmp_path / "logs"
    flags = [*SMALL, "--epochs", "1"]
    codes = _wait(_start_workers(run_dir, flags, logs))
    assert codes == [0, 0], _log_text(logs, 0)[-3000:] + _log_text(logs, 1)[-3000:]
    assert "(chief)" in _log_text(logs, 0) and "(non-chief)" in _log_text(logs, 1)

    metrics = json.loads((run_dir / "metrics.json").read_text())
    assert metrics["step"]["replicas"] == 2 and metrics["epochs_completed"] == 1
    assert metrics["step"]["xla"] is False and metrics["step"]["steps_per_execution"] == 1
    evaluated = run_cli(
        "evaluate", "--model", str(run_dir / "best.keras"), "--split", "test[:500]", "--json"
    )  # the chief's model evaluates
    assert evaluated.returncode == 0, evaluated.stderr
    assert json.loads(evaluated.stdout)["accuracy"] == pytest.approx(metrics["test_accuracy"])
    assert not scratch_dir(str(run_dir), ("worker", 1)).exists()  # the worker's scratch is gone

    # The same run on one device, with its step settings: the same weights.
    single = run_cli(
        "train",
        *flags,
        "--run-dir",
        str(tmp_path / "single"),
        "--jit-compile",
        "off",
        "--steps-per-execution",
        "1",
    )
    assert single.returncode == 0, single.stderr
    a = load_model(str(run_dir / "best.keras")).get_weights()
    b = load_model(str(tmp_path / "single" / "best.keras")).get_weights()
    for x, y in zip(a, b, strict=True):
        np.testing.assert_allclose(x, y, rtol=0, atol=1e-5)


def test_a_job_that_loses_a_worker_mid_epoch_resumes_from_the_backup(source, tmp_path):
    run_dir, logs = tmp_path / "run", tmp_path / "logs"
    flags = [*SMALL, "--epochs", "2", "--backup-every", "10"]
    chief, worker = _start_workers(run_dir, flags, logs)
    manifest = run_dir / "backup" / "manifest.json"
    deadline = time.monotonic() + 180
    while time.monotonic() < deadline and chief.poll() is None:
        try:
            if json.loads(manifest.read_text())["backups"][0]["step"] >= 20:  # mid-epoch 1
                break
        except (OSError, ValueError, KeyError, IndexError):
            pass
        time.sleep(0.05)
    worker.send_signal(signal.SIGKILL)
    # The chief notices the lost worker (missed heartbeats) and stops, naming the problem.
    assert _wait([chief, worker], timeout=120) == [75, -signal.SIGKILL]
    chief_log = _log_text(logs, 0)
    said = [line for line in chief_log.splitlines() if line.startswith("relunet train:")]
    assert len(said) == 1 and said[0].startswith("relunet train: another worker stopped during")
    assert "Traceback" not in chief_log

    codes = _wait(_start_workers(run_dir, flags, logs))
    assert codes == [0, 0], _log_text(logs, 0)[-3000:]
    assert "run: resuming from the backup" in _log_text(logs, 1)
    history = (run_dir / "history.csv").read_text().splitlines()
    assert [row.split(",")[0] for row in history[1:]] == ["0", "1"]
    assert json.loads((run_dir / "metrics.json").read_text())["epochs_completed"] == 2
    assert not scratch_dir(str(run_dir), ("worker", 1)).exists()
