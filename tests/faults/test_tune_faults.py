"""Fault injection for `relunet tune`: real searches killed with SIGKILL inside trials.

Every case runs the same deterministic search (3 trials of 3 epochs, 33 steps an
epoch, backed up every 8 steps: chunks of 8, so every epoch ends inside a chunk) and
must end where an uninterrupted search ends: each trial with the same optimizer steps
(counted once), bitwise-equal weights (their sha256), the same val_accuracy at every
epoch, and keras-tuner's bookkeeping whole (every trial ended once, none ongoing). The
last case runs one trial of that search, of two epochs, trained with --augment and
--non-digits.
"""

import json
import os
import random
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from helpers import free_ports

pytestmark = pytest.mark.slow  # real processes, minutes: the full suite's

TRIALS, EPOCHS, STEPS = 3, 3, 33  # ceil(4200 / 128) steps an epoch
ARGS = [
    "--train-split",
    "train[:4200]",
    "--val-split",
    "train[50000:50500]",
    "--full-train-split",
    "train[:512]",
    "--test-split",
    "test[:256]",
    "--max-trials",
    str(TRIALS),
    "--epochs",
    str(EPOCHS),
    "--width-min",
    "128",
    "--width-max",
    "128",
    "--deterministic",
    "--steps-per-execution",
    "8",
    "--backup-every",
    "8",
    "--verbose",
    "0",
]
TIMEOUT = 300


def command(directory, extra=()):
    return [
        sys.executable, "-m", "relunet.cli", "tune", *ARGS, *extra, "--directory", str(directory)
    ]  # fmt: skip


def start(directory, env=None, extra=()):
    return subprocess.Popen(
        command(directory, extra),
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        env=env,
    )


def finish(directory, extra=()):
    done = subprocess.run(
        command(directory, extra), capture_output=True, text=True, timeout=TIMEOUT
    )
    assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-2000:]
    return done.stdout


def backup_position(directory, trial):
    """(epoch, step) of a trial's newest backup, or None."""
    manifest = Path(directory, "relunet", f"trial_{trial}", "execution0", "backup", "manifest.json")
    try:
        newest = json.loads(manifest.read_text())["backups"][0]
        return newest["epoch"], newest["step"]
    except (OSError, ValueError, KeyError, IndexError):
        return None


def search_position(directory):
    """Global step of the search's newest backup: trials before it count whole."""
    for trial in reversed(range(TRIALS)):
        position = backup_position(directory, trial)
        if position is not None:
            return trial * EPOCHS * STEPS + position[0] * STEPS + position[1]
    return -1


def kill_when(process, condition, how=signal.SIGKILL):
    """Send `how` once `condition` holds. SIGTERM and SIGINT (Ctrl-C) end the search at
    once with 75, saying so, as SIGKILL ends it: from the newest backup on."""
    deadline = time.monotonic() + TIMEOUT
    while time.monotonic() < deadline:
        if condition():
            process.send_signal(how)
            process.wait(timeout=60)
            if how == signal.SIGKILL:
                assert process.returncode == -signal.SIGKILL
            else:
                said = process.stdout.read()
                assert process.returncode == 75, said[-2000:]
                assert f"relunet tune: interrupted: {how.name} received; every file" in said
            return
        if process.poll() is not None:
            raise AssertionError(f"the search ended first: {process.stdout.read()[-2000:]}")
        time.sleep(0.005)
    raise AssertionError("timed out waiting for the search")


def trial_results(directory):
    """What each trial ended with, and keras-tuner's oracle."""
    project = Path(directory, "relunet")
    results = {}
    for trial in range(TRIALS):
        folder = project / f"trial_{trial}"
        record = json.loads((folder / "trial.json").read_text())
        ran = json.loads((folder / "relunet_trial.json").read_text())
        observations = record["metrics"]["metrics"]["val_accuracy"]["observations"]
        results[str(trial)] = {
            "status": record["status"],
            "hyperparameters": record["hyperparameters"]["values"],
            "val_accuracy": [o["value"] for o in observations],
            "epochs": json.loads((folder / "execution0" / "epochs.json").read_text()),
            "optimizer_steps": ran["optimizer_steps"],
            "weights_sha256": ran["weights_sha256"],
            "resumed_from": ran["resumed_from"],
            "backups_left": list(folder.glob("execution*/backup")),
        }
    oracle = json.loads((project / "oracle.json").read_text())
    return results, oracle


def assert_same_search(directory, reference, chief=False):
    """Every trial as the reference's, and keras-tuner's records whole. A chief's last
    oracle.json may still list its last ended trial as ongoing: keras-tuner 1.4.8's
    end_trial saves before it drops it, and only the tuner's own save (which a chief
    never makes) follows; a reload drops it (_compat.requeue_trials_a_kill_interrupted)."""
    results, oracle = trial_results(directory)
    for trial, result in results.items():
        expected = reference[trial]
        assert result["status"] == "COMPLETED" and not result["backups_left"]
        assert result["optimizer_steps"] == EPOCHS * STEPS  # each step counted once
        for key in ("hyperparameters", "val_accuracy", "epochs", "weights_sha256"):
            assert result[key] == expected[key], (trial, key)
    assert sorted(oracle["end_order"]) == [str(t) for t in range(TRIALS)]
    ongoing = set(oracle["ongoing_trials"].values())
    assert ongoing <= set(oracle["end_order"]) if chief else not ongoing
    assert oracle["retry_queue"] == []
    return results


@pytest.fixture(scope="module")
def reference(tmp_path_factory, source):
    directory = tmp_path_factory.mktemp("reference")
    finish(directory)
    results, oracle = trial_results(directory)
    assert all(r["optimizer_steps"] == EPOCHS * STEPS for r in results.values())
    assert all(r["resumed_from"] is None for r in results.values())
    assert oracle["ongoing_trials"] == {}
    return results


def test_a_search_killed_in_a_trial_s_second_epoch_continues_that_trial(tmp_path, reference):
    # The done-when of issue 32: SIGKILL inside the first trial's second epoch, after a
    # backup there; the rerun continues the trial from it (not from its start).
    process = start(tmp_path)
    kill_when(process, lambda: (backup_position(tmp_path, 0) or (0, 0)) >= (1, 1))
    killed_at = backup_position(tmp_path, 0)
    assert killed_at[0] == 1 and killed_at[1] > 0
    output = finish(tmp_path)
    assert "tune: resuming the trial from its backup" in output
    results = assert_same_search(tmp_path, reference)
    resumed = results["0"]["resumed_from"]
    assert resumed["epoch"] == 1 and resumed["step"] >= killed_at[1]  # continued there


def test_kills_and_ctrl_c_at_random_points_across_trials_then_rerun_gives_the_same_search(
    tmp_path, reference, request
):
    """SIGKILL, then a Ctrl-C (SIGINT; with --slow SIGTERM and SIGKILL again), each at a
    random step of the search: the rerun ends as the uninterrupted search ended."""
    kills = 4 if request.config.getoption("--slow") else 2
    rng = random.Random(32 + kills)
    targets = sorted(rng.sample(range(1, TRIALS * EPOCHS * STEPS - 1), kills))
    signals = (signal.SIGKILL, signal.SIGINT, signal.SIGTERM, signal.SIGKILL)
    for target, how in zip(targets, signals, strict=False):
        process = start(tmp_path)
        kill_when(process, lambda target=target: search_position(tmp_path) >= target, how)
    print(f"killed at or past the search's global steps {targets}")
    finish(tmp_path)
    assert_same_search(tmp_path, reference)


def test_a_worker_killed_mid_trial_resumes_its_trial_when_it_comes_back(tmp_path, reference):
    env = dict(
        os.environ, KERASTUNER_ORACLE_IP="127.0.0.1", KERASTUNER_ORACLE_PORT=str(free_ports()[0])
    )
    chief = start(tmp_path, dict(env, KERASTUNER_TUNER_ID="chief"))
    time.sleep(1)
    worker = start(tmp_path, dict(env, KERASTUNER_TUNER_ID="tuner0"))
    kill_when(worker, lambda: (backup_position(tmp_path, 0) or (0, 0)) >= (1, 1))
    # Back under the same id: the chief hands it the trial it was running.
    worker = start(tmp_path, dict(env, KERASTUNER_TUNER_ID="tuner0"))
    outputs = [p.communicate(timeout=TIMEOUT)[0] for p in (chief, worker)]
    assert [chief.returncode, worker.returncode] == [0, 0], outputs[0][-2000:]
    assert "tune: resuming the trial from its backup" in outputs[1]
    results = assert_same_search(tmp_path, reference, chief=True)
    assert results["0"]["resumed_from"]["epoch"] == 1


# One trial trained as --preset robust trains: each batch distorted and with shapes
# that are not digits (their randomness keyed by seed, epoch and step). Two epochs: the
# kill lands in the second, the last, which the resumed trial must finish as the other.
AUGMENTED_EPOCHS = 2
AUGMENTED = ["--augment", "0.75", "--rotation", "20", "--non-digits", "0.5", "--max-trials", "1"]
AUGMENTED += ["--epochs", str(AUGMENTED_EPOCHS)]


def test_an_augmented_trial_killed_in_its_second_epoch_ends_as_an_uninterrupted_one(tmp_path):
    """The rest of the interrupted epoch is distorted, and carries its shapes, as the
    uninterrupted trial's was: the same weights, bitwise."""
    uninterrupted, killed = tmp_path / "uninterrupted", tmp_path / "killed"
    finish(uninterrupted, AUGMENTED)
    process = start(killed, extra=AUGMENTED)
    kill_when(process, lambda: (backup_position(killed, 0) or (0, 0)) >= (1, 1))
    killed_at = backup_position(killed, 0)
    assert killed_at[0] == 1 and killed_at[1] > 0
    assert "tune: resuming the trial from its backup" in finish(killed, AUGMENTED)
    ran = [
        json.loads(Path(d, "relunet", "trial_0", "relunet_trial.json").read_text())
        for d in (uninterrupted, killed)
    ]
    assert ran[0]["resumed_from"] is None and ran[1]["resumed_from"]["epoch"] == 1
    assert ran[0]["optimizer_steps"] == ran[1]["optimizer_steps"] == AUGMENTED_EPOCHS * STEPS
    assert ran[0]["weights_sha256"] == ran[1]["weights_sha256"]
    epochs = [
        Path(d, "relunet", "trial_0", "execution0", "epochs.json") for d in (uninterrupted, killed)
    ]
    assert json.loads(epochs[0].read_text()) == json.loads(epochs[1].read_text())
