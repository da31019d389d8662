"""Fault injection: real `relunet train` processes killed with real signals.

Every case trains the same small deterministic run (3 epochs of 24 batches, a backup
every 4 batches) and must end exactly where an uninterrupted run ends: one history
row per epoch with the same values, and bitwise-equal final weights.
`pytest --slow` kills each run at more points.
"""

import csv
import json
import os
import random
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

from relunet.model import load_model

STEPS = 24  # ceil(3000 / 128) batches an epoch
ARGS = ["--train-split", "train[:3000]", "--val-split", "none", "--test-split", "test[:500]",
        "--epochs", "3", "--steps-per-execution", "4", "--backup-every", "4",
        "--deterministic", "--verbose", "0"]


def command(run_dir, *extra):
    return [sys.executable, "-m", "relunet.cli", "train", *ARGS, "--run-dir", str(run_dir), *extra]


def start(run_dir, *extra, env=None):
    return subprocess.Popen(command(run_dir, *extra), stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True, env=env)


def finish(run_dir, *extra):
    done = subprocess.run(command(run_dir, *extra), capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-3000:]
    return done


def position(run_dir):
    """Global step (epoch * STEPS + step) of the newest backup, or -1."""
    try:
        newest = json.loads((Path(run_dir) / "backup" / "manifest.json").read_text())["backups"][0]
        return newest["epoch"] * STEPS + newest["step"]
    except (OSError, ValueError, KeyError, IndexError):
        return -1


def wait_until(condition, process, timeout=240):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if condition():
            return
        if process.poll() is not None:
            raise AssertionError(f"the run ended first: {process.stderr.read()[-3000:]}")
        time.sleep(0.01)
    raise AssertionError("timed out waiting for the run")


def history(run_dir):
    with open(Path(run_dir) / "history.csv", newline="") as f:
        return [{k: v for k, v in row.items() if k != "epoch_seconds"} for row in csv.DictReader(f)]


def weights(run_dir):
    return load_model(str(Path(run_dir) / "best.keras")).get_weights()


def assert_same_result(run_dir, reference):
    assert json.loads((Path(run_dir) / "metrics.json").read_text())["epochs_completed"] == 3
    assert history(run_dir) == reference["history"]  # one row per epoch, same values
    for a, b in zip(weights(run_dir), reference["weights"]):
        assert np.array_equal(a, b)  # bitwise
    assert not (Path(run_dir) / "backup").exists()


@pytest.fixture(scope="module")
def reference(tmp_path_factory, source):
    run_dir = tmp_path_factory.mktemp("reference") / "run"
    finish(run_dir)
    return {"history": history(run_dir), "weights": weights(run_dir)}


def test_uninterrupted_runs_are_bitwise_reproducible(tmp_path, reference):
    finish(tmp_path / "run")
    assert_same_result(tmp_path / "run", reference)


def test_sigkill_at_random_steps_then_rerun_gives_the_uninterrupted_result(tmp_path, reference,
                                                                        request):
    kills = 5 if request.config.getoption("--slow") else 2
    targets = sorted(random.Random(kills).sample(range(5, 3 * STEPS - 4, 4), kills))
    run_dir = tmp_path / "run"
    for target in targets:
        process = start(run_dir)
        wait_until(lambda: position(run_dir) >= target, process)
        process.send_signal(signal.SIGKILL)
        process.wait(timeout=60)
        assert process.returncode == -signal.SIGKILL
    print(f"killed at steps >= {targets}")
    finish(run_dir)
    assert_same_result(run_dir, reference)


def test_sigkill_in_the_middle_of_a_backup_write(tmp_path, reference):
    run_dir = tmp_path / "run"
    # The 5th backup stalls after writing its weights and before publishing them.
    process = start(run_dir, env=dict(os.environ, RELUNET_FAULT_STALL_BACKUP="5:120"))
    # Every write has its temporary file for a moment; the stalled one keeps it.
    wait_until(lambda: position(run_dir) == 4 * 4
               and any((run_dir / "backup").glob("tmp-weights-*")), process)
    time.sleep(1)
    assert position(run_dir) == 4 * 4 and any((run_dir / "backup").glob("tmp-weights-*"))
    process.send_signal(signal.SIGKILL)
    process.wait(timeout=60)
    assert position(run_dir) == 4 * 4  # the 4th backup is still the one the manifest names
    finish(run_dir)
    assert_same_result(run_dir, reference)


@pytest.mark.parametrize("signum", [signal.SIGTERM, signal.SIGINT])
def test_sigterm_or_sigint_writes_a_final_backup_and_exits_75(tmp_path, reference, signum):
    run_dir = tmp_path / "run"
    process = start(run_dir)
    wait_until(lambda: position(run_dir) >= STEPS + 6, process)
    process.send_signal(signum)
    _, stderr = process.communicate(timeout=120)
    assert process.returncode == 75, stderr[-3000:]
    lines = [line for line in stderr.splitlines() if line.strip()]
    assert len(lines) == 1 and f"interrupted: {signal.Signals(signum).name} received" in lines[0]
    assert "rerun the same command to resume" in lines[0]
    assert not (run_dir / "metrics.json").exists()
    assert len(history(run_dir)) < 3
    resumed = finish(run_dir)
    assert "resuming from the backup" in resumed.stdout
    assert_same_result(run_dir, reference)


def test_truncated_newest_backup_falls_back_to_the_previous_one(tmp_path, reference):
    run_dir = tmp_path / "run"
    process = start(run_dir)
    wait_until(lambda: position(run_dir) >= STEPS + 8, process)
    process.send_signal(signal.SIGKILL)
    process.wait(timeout=60)
    manifest = json.loads((run_dir / "backup" / "manifest.json").read_text())
    newest = run_dir / "backup" / manifest["backups"][0]["weights"]
    newest.write_bytes(newest.read_bytes()[: newest.stat().st_size // 2])

    resumed = finish(run_dir)
    assert "the newest backup is unusable" in resumed.stdout
    assert "sha256 mismatch" in resumed.stdout
    assert_same_result(run_dir, reference)


def test_backup_from_another_configuration_is_refused_unless_restart(tmp_path, reference):
    other, run_dir = tmp_path / "other", tmp_path / "run"
    for folder, extra in ((other, ["--lr", "0.002"]), (run_dir, [])):
        process = start(folder, *extra)
        wait_until(lambda: position(folder) >= 8, process)
        process.send_signal(signal.SIGKILL)
        process.wait(timeout=60)
    shutil.rmtree(run_dir / "backup")
    shutil.copytree(other / "backup", run_dir / "backup")
    before = {p.relative_to(run_dir): p.read_bytes() for p in run_dir.rglob("*") if p.is_file()}

    refused = subprocess.run(command(run_dir), capture_output=True, text=True, timeout=300)
    assert refused.returncode == 2
    lines = [line for line in refused.stderr.splitlines() if line.strip()]
    assert len(lines) == 1 and "written by another training configuration" in lines[0]
    assert "--restart" in lines[0]
    assert {p.relative_to(run_dir): p.read_bytes() for p in run_dir.rglob("*") if p.is_file()} == before

    restarted = finish(run_dir, "--restart")
    assert "discarded the progress" in restarted.stdout
    assert_same_result(run_dir, reference)
