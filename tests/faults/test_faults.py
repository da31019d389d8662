"""Fault injection: real `relunet train` processes killed with real signals.

Every case trains the same deterministic run under the README's default flags
(`--steps-per-execution 64`, `--backup-every 100`, a validation split) on 20,000
images: 157 steps an epoch, which is not a multiple of the 64-step chunk, so every
epoch ends inside a chunk of 29 steps. Each must end exactly where an uninterrupted
run ends: one history row per epoch with the same values, bitwise-equal final
weights, and 3 x 157 optimizer steps. Every rerun is bounded by a timeout, so a
resume that never ends fails the test instead of hanging it.
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

from relunet.training.model import load_model

pytestmark = pytest.mark.slow  # real processes, minutes: the full suite's

EPOCHS, STEPS = 3, 157  # ceil(20000 / 128) steps an epoch; backups at step 128 and ends
ARGS = [
    "--train-split",
    "train[:20000]",
    "--val-split",
    "train[55000:56000]",
    "--test-split",
    "test[:500]",
    "--epochs",
    str(EPOCHS),
    "--seed",
    "7",
    "--deterministic",
    "--verbose",
    "0",
]
FAULTY = Path(__file__).with_name("faulty_relunet.py")
RERUN_TIMEOUT = 240


def command(run_dir, *extra):
    return [sys.executable, str(FAULTY), "train", *ARGS, "--run-dir", str(run_dir), *extra]


def start(run_dir, *extra, fault=""):
    env = dict(os.environ, RELUNET_TEST_FAULT=fault)
    return subprocess.Popen(
        command(run_dir, *extra), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env
    )


def finish(run_dir, *extra, fallback=False):
    done = subprocess.run(
        command(run_dir, *extra), capture_output=True, text=True, timeout=RERUN_TIMEOUT
    )
    assert done.returncode == 0, done.stderr[-3000:]
    assert ("backup is unusable" in done.stdout) == fallback, done.stdout
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
        time.sleep(0.005)
    raise AssertionError("timed out waiting for the run")


def kill_when(run_dir, reached, signum=signal.SIGKILL):
    process = start(run_dir)
    wait_until(lambda: position(run_dir) >= reached, process)
    process.send_signal(signum)
    process.wait(timeout=60)
    return process


def files(run_dir):
    """Every file's bytes, but the lock's (which names whoever held it last)."""
    return {
        p.relative_to(run_dir): p.read_bytes()
        for p in Path(run_dir).rglob("*")
        if p.is_file() and p.name != ".lock"
    }


def history(run_dir):
    with open(Path(run_dir) / "history.csv", newline="") as f:
        return [{k: v for k, v in row.items() if k != "epoch_seconds"} for row in csv.DictReader(f)]


def trained(run_dir):
    model = load_model(str(Path(run_dir) / "best.keras"))
    return model.get_weights(), int(model.optimizer.iterations)


def assert_same_result(run_dir, reference):
    metrics = json.loads((Path(run_dir) / "metrics.json").read_text())
    assert metrics["epochs_completed"] == EPOCHS
    assert history(run_dir) == reference["history"]  # one row per epoch, same values
    weights, steps = trained(run_dir)
    assert steps == reference["steps"]
    for a, b in zip(weights, reference["weights"], strict=True):
        assert np.array_equal(a, b)  # bitwise
    assert metrics["test_accuracy"] == reference["test_accuracy"]
    assert not (Path(run_dir) / "backup").exists()


@pytest.fixture(scope="module")
def reference(tmp_path_factory, source):
    run_dir = tmp_path_factory.mktemp("reference") / "run"
    finish(run_dir)
    weights, steps = trained(run_dir)
    metrics = json.loads((run_dir / "metrics.json").read_text())
    return {
        "history": history(run_dir),
        "weights": weights,
        "steps": steps,
        "test_accuracy": metrics["test_accuracy"],
        "metrics": metrics,
        "run_dir": run_dir,
    }


def test_an_uninterrupted_run_trains_exactly_its_steps_and_is_reproducible(tmp_path, reference):
    # best.keras is the best epoch's model: its optimizer has taken that epoch's steps.
    best_epoch = int(max(reference["history"], key=lambda r: float(r["val_accuracy"]))["epoch"])
    assert reference["steps"] == (best_epoch + 1) * STEPS
    assert reference["metrics"]["optimizer_steps"] == EPOCHS * STEPS
    finish(tmp_path / "run")
    assert_same_result(tmp_path / "run", reference)


def test_sigkill_at_random_steps_then_rerun_gives_the_uninterrupted_result(
    tmp_path, reference, request
):
    kills = 4 if request.config.getoption("--slow") else 2
    rng = random.Random(kills)
    targets = sorted(rng.sample(range(1, EPOCHS * STEPS - 1), kills))
    run_dir = tmp_path / "run"
    for target in targets:
        process = kill_when(run_dir, target)
        assert process.returncode == -signal.SIGKILL
    print(f"killed after the backups at or past global steps {targets}")
    finish(run_dir)
    assert_same_result(run_dir, reference)


def test_sigkill_right_after_an_epoch_end_backup(tmp_path, reference):
    run_dir = tmp_path / "run"
    kill_when(run_dir, STEPS)  # the backup at the end of epoch 1 is (epoch 2, step 0)
    assert position(run_dir) % STEPS in (0, 128)
    finish(run_dir)
    assert_same_result(run_dir, reference)


@pytest.mark.parametrize("name", ["KILL", "TERM"])
def test_a_signal_inside_an_epoch_s_last_chunk(tmp_path, reference, name):
    """The last chunk of epoch 2 runs steps 128..156; the signal arrives while it runs.
    SIGINT takes the same handler as SIGTERM (StopOnSignal.SIGNALS); the test below sends
    it mid-epoch, so each is sent once, each where the other is not."""
    run_dir = tmp_path / "run"
    process = start(run_dir, fault=f"signal-in-last-chunk:2:{name}")
    stdout, stderr = process.communicate(timeout=RERUN_TIMEOUT)
    assert "fault: SIG" in stdout
    if name == "KILL":
        assert process.returncode == -signal.SIGKILL
        assert position(run_dir) == STEPS + 128  # the mid-epoch backup before that chunk
    else:
        # The chunk ended the epoch, so the epoch ends first: validation, its history row
        # and its end-of-epoch backup, and only then the process.
        assert process.returncode == 75, stderr[-3000:]
        lines = [line for line in stderr.splitlines() if line.strip()]
        assert lines == [
            f"relunet train: interrupted: SIG{name} received; backup written at "
            "the end of epoch 2; rerun the same command to resume"
        ]
        assert position(run_dir) == 2 * STEPS
        assert len(history(run_dir)) == 2
    assert not (run_dir / "metrics.json").exists()
    resumed = finish(run_dir)
    assert "resuming from the backup" in resumed.stdout
    assert_same_result(run_dir, reference)


def test_sigint_mid_epoch_writes_a_final_backup_and_exits_75(tmp_path, reference):
    signum = signal.SIGINT  # SIGTERM, its twin: in an epoch's last chunk, above
    run_dir = tmp_path / "run"
    process = start(run_dir)
    wait_until(lambda: position(run_dir) >= STEPS, process)  # epoch 2's first chunk runs
    process.send_signal(signum)
    _, stderr = process.communicate(timeout=120)
    assert process.returncode == 75, stderr[-3000:]
    lines = [line for line in stderr.splitlines() if line.strip()]
    assert len(lines) == 1 and f"interrupted: {signal.Signals(signum).name} received" in lines[0]
    assert "rerun the same command to resume" in lines[0]
    assert position(run_dir) in (STEPS + 64, STEPS)  # after that chunk (or epoch 1's end)
    assert not (run_dir / "metrics.json").exists()
    resumed = finish(run_dir)
    assert "resuming from the backup" in resumed.stdout
    assert_same_result(run_dir, reference)


def test_sigkill_in_the_middle_of_a_backup_write(tmp_path, reference):
    run_dir = tmp_path / "run"
    # The 3rd backup (mid-epoch 2) stalls after writing its weights, before publishing them.
    process = start(run_dir, fault="stall-backup:3:120")
    wait_until(
        lambda: any((run_dir / "backup").glob("tmp-weights-*")) and position(run_dir) == STEPS,
        process,
    )
    time.sleep(0.5)
    assert position(run_dir) == STEPS and any((run_dir / "backup").glob("tmp-weights-*"))
    process.send_signal(signal.SIGKILL)
    process.wait(timeout=60)
    assert position(run_dir) == STEPS  # the 2nd backup is still the one the manifest names
    finish(run_dir)
    assert not any((run_dir / "backup").glob("tmp-*")) if (run_dir / "backup").exists() else True
    assert_same_result(run_dir, reference)


def test_truncated_newest_backup_falls_back_to_the_previous_one(tmp_path, reference):
    run_dir = tmp_path / "run"
    kill_when(run_dir, STEPS + 128)
    manifest = json.loads((run_dir / "backup" / "manifest.json").read_text())
    newest = run_dir / "backup" / manifest["backups"][0]["weights"]
    newest.write_bytes(newest.read_bytes()[: newest.stat().st_size // 2])

    resumed = finish(run_dir, fallback=True)
    assert "sha256 mismatch" in resumed.stdout
    assert_same_result(run_dir, reference)


def test_backup_from_another_configuration_is_refused_unless_restart(tmp_path, reference):
    other, run_dir = tmp_path / "other", tmp_path / "run"
    process = start(other, "--lr", "0.002")
    wait_until(lambda: position(other) >= 128, process)
    process.send_signal(signal.SIGKILL)
    process.wait(timeout=60)
    run_dir.mkdir()  # this configuration's run dir, holding the other one's backup
    shutil.copy(reference["run_dir"] / "config.json", run_dir / "config.json")
    shutil.copytree(other / "backup", run_dir / "backup")
    before = files(run_dir)

    refused = subprocess.run(command(run_dir), capture_output=True, text=True, timeout=300)
    assert refused.returncode == 2
    lines = [line for line in refused.stderr.splitlines() if line.strip()]
    assert len(lines) == 1 and "written by another training configuration" in lines[0]
    assert "--restart" in lines[0]
    assert files(run_dir) == before

    restarted = finish(run_dir, "--restart")
    assert "discarded the progress" in restarted.stdout
    assert_same_result(run_dir, reference)


AUGMENTED = ["--augment", "0.75", "--dropout", "0.2"]  # every random draw a function of the seed


def test_an_augmented_run_with_dropout_killed_at_random_steps_ends_bitwise_equal(tmp_path):
    """Distortions keyed by (seed, epoch, step) and dropout's seed state in the backup:
    killed twice at random steps and rerun, the run ends where an uninterrupted one does."""
    uninterrupted = tmp_path / "uninterrupted"
    finish(uninterrupted, *AUGMENTED)
    weights, steps = trained(uninterrupted)
    reference = {
        "history": history(uninterrupted),
        "weights": weights,
        "steps": steps,
        "test_accuracy": json.loads((uninterrupted / "metrics.json").read_text())["test_accuracy"],
    }
    run_dir = tmp_path / "run"
    targets = sorted(random.Random(3).sample(range(1, EPOCHS * STEPS - 1), 2))
    for target in targets:
        process = start(run_dir, *AUGMENTED)
        wait_until(lambda target=target: position(run_dir) >= target, process)
        process.send_signal(signal.SIGKILL)
        process.wait(timeout=60)
    finish(run_dir, *AUGMENTED)
    assert_same_result(run_dir, reference)
