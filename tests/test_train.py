"""Training on real MNIST, run directories, and resuming after a real SIGKILL."""

import csv
import json
import os
import shutil
import signal
import subprocess
import sys
import time

import pytest

from relunet import TrainConfig
from relunet.base.errors import RelunetError
from relunet.training.train import train

SMALL = dict(train_split="train[:5000]", val_split="train[50000:51000]", test_split="test[:2000]")


def _history(run_dir):
    with open(run_dir / "history.csv", newline="") as f:
        return list(csv.DictReader(f))


def test_training_on_a_real_mnist_slice_beats_90_percent(trained_run):
    """The run every test shares (tests/conftest.py: `train` on 10000 real images, one
    epoch, the lab's network): above 90% on 1000 test images (about 95% here), and the
    files a finished run leaves."""
    run = trained_run
    metrics = json.loads((run / "metrics.json").read_text())

    assert metrics["test_accuracy"] > 0.90
    assert metrics["epochs_completed"] == 1 and metrics["train_examples"] == 10000
    assert metrics["train_samples_per_second"] > 0 and "genuine MNIST" in metrics["data_source"]
    assert [row["epoch"] for row in _history(run)] == ["0"]
    assert (run / "best.keras").is_file() and any((run / "logs").rglob("*tfevents*"))
    assert not (run / "backup").exists()  # removed once fit() has finished
    assert json.loads((run / "config.json").read_text())["train_split"] == "train[:10000]"


def test_rerun_of_a_finished_run_trains_nothing(trained_run, tmp_path, capsys):
    """The same configuration again returns what the finished run wrote and touches no file."""
    run_dir = tmp_path / "run"
    shutil.copytree(trained_run, run_dir)
    saved = json.loads((run_dir / "config.json").read_text())
    config = TrainConfig(**{**saved, "run_dir": str(run_dir), "verbose": 0})
    before = {p.name: p.stat().st_mtime_ns for p in run_dir.iterdir()}
    assert train(config) == json.loads((run_dir / "metrics.json").read_text())
    assert "has already finished" in capsys.readouterr().out
    assert {p.name: p.stat().st_mtime_ns for p in run_dir.iterdir()} == before


def test_run_dir_with_another_config_is_refused_and_left_alone(tmp_path):
    run_dir = tmp_path / "run"
    run_dir.mkdir()
    saved = TrainConfig(**SMALL, run_dir=str(run_dir)).to_dict()
    (run_dir / "config.json").write_text(json.dumps(saved))
    with pytest.raises(RelunetError, match=r"another configuration \(width: 256 -> 512\)"):
        train(TrainConfig(**SMALL, width=512, run_dir=str(run_dir)))
    assert json.loads((run_dir / "config.json").read_text()) == saved
    assert [p.name for p in run_dir.iterdir()] == ["config.json"]


def test_folder_that_is_not_a_run_is_refused(tmp_path):
    (tmp_path / "notes.txt").write_text("mine")
    with pytest.raises(RelunetError, match="not a relunet run"):
        train(TrainConfig(**SMALL, run_dir=str(tmp_path)))
    assert [p.name for p in tmp_path.iterdir()] == ["notes.txt"]


def _backup_state(run_dir):
    try:
        return json.loads((run_dir / "backup" / "manifest.json").read_text())["backups"][0]
    except (OSError, ValueError, KeyError, IndexError):
        return None


@pytest.mark.slow
def test_sigkill_mid_epoch_then_same_command_resumes_and_finishes(tmp_path):
    run_dir = tmp_path / "run"
    command = [
        sys.executable,
        "-m",
        "relunet.cli",
        "train",
        "--train-split",
        "train[:20000]",
        "--val-split",
        "train[50000:51000]",
        "--test-split",
        "test[:1000]",
        "--epochs",
        "3",
        "--backup-every",
        "10",
        "--steps-per-execution",
        "8",
        "--run-dir",
        str(run_dir),
        "--verbose",
        "0",
    ]
    process = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    deadline = time.monotonic() + 240
    # Kill as soon as a backup records progress inside the second epoch.
    while time.monotonic() < deadline and process.poll() is None:
        state = _backup_state(run_dir)
        if state and state["epoch"] >= 1 and state["step"] > 0:
            os.kill(process.pid, signal.SIGKILL)
            break
        time.sleep(0.02)
    process.wait(timeout=60)
    assert process.returncode == -signal.SIGKILL, process.stdout.read().decode()[-2000:]
    assert not (run_dir / "metrics.json").exists()
    rows_before = len(_history(run_dir))
    assert 1 <= rows_before <= 2

    rerun = subprocess.run(command, capture_output=True, text=True, timeout=300)
    assert rerun.returncode == 0, rerun.stderr[-2000:]
    assert "resuming from the backup" in rerun.stdout
    metrics = json.loads((run_dir / "metrics.json").read_text())
    assert metrics["epochs_completed"] == 3
    assert [row["epoch"] for row in _history(run_dir)] == ["0", "1", "2"]
    assert metrics["test_accuracy"] > 0.9


def test_a_process_that_built_other_models_first_resumes_a_backup(tmp_path):
    """Keras names every model and optimizer a process builds anew (relu_net_1, adam_1,
    and the optimizer's slots repeat the model's name): a backup written by one process
    is restored in one that built others first (a notebook, tune's retrain)."""
    import keras
    import numpy as np

    from relunet.config import ModelConfig, OptimConfig
    from relunet.training.backup import AtomicBackupAndRestore
    from relunet.training.model import build_model

    def fresh():
        return build_model(ModelConfig(width=8), OptimConfig(jit_compile="off"))

    x = np.random.default_rng(0).random((64, 28, 28, 1), np.float32)
    y = keras.utils.to_categorical(np.arange(64) % 10, 10)
    writer = fresh()
    backup = AtomicBackupAndRestore(tmp_path / "backup", delete_checkpoint=False)
    writer.fit(x, y, batch_size=32, epochs=1, callbacks=[backup], verbose=0)
    fresh()  # another model first
    reader = fresh()
    assert reader.name != writer.name and reader.optimizer.name != writer.optimizer.name
    state = AtomicBackupAndRestore(tmp_path / "backup").restore(reader)
    assert state is not None and state.epoch == 1
    for a, b in zip(reader.get_weights(), writer.get_weights(), strict=True):
        np.testing.assert_array_equal(a, b)
    assert int(reader.optimizer.iterations) == int(writer.optimizer.iterations) == 2


@pytest.mark.parametrize("save_freq", ["epoch", 2])
def test_a_plain_fit_interrupted_in_its_third_epoch_resumes_there(tmp_path, save_freq):
    """docs/python.md's notebook loop: `fit` with only the backup callback (no
    steps_per_epoch given), stopped in epoch 3's validation, then run again as written:
    it trains epochs 3 to 5 only, from the backup of epoch 2's end. That is step 0 of
    epoch 3, not a step past the end of epoch 2, which the rerun refused; and a backup
    every 2 steps does not record epoch 3's last (one chunk of 4 steps an epoch here)."""
    import keras
    import numpy as np

    from relunet.config import ModelConfig, OptimConfig
    from relunet.training.backup import AtomicBackupAndRestore
    from relunet.training.model import build_model

    class StopInThird(keras.callbacks.Callback):
        def on_test_begin(self, logs=None):
            if int(self.model.optimizer.iterations) == 3 * 4:  # epoch 3 trained, not ended
                raise KeyboardInterrupt

    x = np.random.default_rng(0).random((64, 28, 28, 1), np.float32)
    y = keras.utils.to_categorical(np.arange(64) % 10, 10)

    def fit(*extra):
        model = build_model(ModelConfig(width=8), OptimConfig(jit_compile="off"))
        backup = AtomicBackupAndRestore(tmp_path / "backup", save_freq=save_freq)
        history = model.fit(
            x,
            y,
            batch_size=16,
            epochs=5,
            validation_data=(x[:16], y[:16]),
            callbacks=[backup, *extra],
            verbose=0,
        )
        return model, history

    with pytest.raises(KeyboardInterrupt):
        fit(StopInThird())
    manifest = json.loads((tmp_path / "backup" / "manifest.json").read_text())
    assert (manifest["backups"][0]["epoch"], manifest["backups"][0]["step"]) == (2, 0)
    model, history = fit()
    assert history.epoch == [2, 3, 4]
    assert int(model.optimizer.iterations) == 5 * 4
    assert not (tmp_path / "backup").exists()  # deleted when training ended
