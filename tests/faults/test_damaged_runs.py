"""A run dir damaged by hand or by accident: each case ends with exit 2 and one line (or
falls back to a good backup, saying so), with no traceback and nothing the user had
changed. They start from a real run stopped in its second epoch by SIGTERM."""

import json
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import cli_cases
import pytest
from helpers import run_cli_cases

pytestmark = pytest.mark.slow

ARGS = [
    "--train-split",
    "train[:3000]",
    "--val-split",
    "train[55000:55500]",
    "--test-split",
    "test[:500]",
    "--epochs",
    "2",
    "--backup-every",
    "10",
    "--steps-per-execution",
    "5",
    "--verbose",
    "0",
]  # 24 steps an epoch


def train(run_dir, *extra):
    return subprocess.run(
        [sys.executable, "-m", "relunet.cli", "train", *ARGS, "--run-dir", str(run_dir), *extra],
        capture_output=True,
        text=True,
        timeout=300,
    )


def files(run_dir):
    return {
        p.relative_to(run_dir): p.read_bytes()
        for p in Path(run_dir).rglob("*")
        if p.is_file() and p.name != ".lock"
    }


def lines(result):
    return [line for line in result.stderr.splitlines() if line.strip()]


@pytest.fixture(scope="module")
def stopped(tmp_path_factory, source):
    """A run stopped by SIGTERM at the end of its first chunk of epoch 2 (a mid-epoch backup)."""
    run_dir = tmp_path_factory.mktemp("stopped") / "run"
    process = subprocess.Popen(
        [sys.executable, "-m", "relunet.cli", "train", *ARGS, "--run-dir", str(run_dir)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    manifest = run_dir / "backup" / "manifest.json"
    deadline = time.monotonic() + 240
    while time.monotonic() < deadline:
        try:
            if json.loads(manifest.read_text())["backups"][0]["epoch"] == 1:
                break
        except (OSError, ValueError, KeyError, IndexError):
            pass
        time.sleep(0.005)
    process.send_signal(signal.SIGTERM)
    process.communicate(timeout=120)
    assert process.returncode == 75 and not (run_dir / "metrics.json").exists()
    return run_dir


def damaged(stopped, tmp_path, change):
    run_dir = tmp_path / "run"
    shutil.copytree(stopped, run_dir)
    change(run_dir)
    return run_dir


def edit_manifest(edit):
    def change(run_dir):
        path = run_dir / "backup" / "manifest.json"
        manifest = json.loads(path.read_text())
        edit(manifest["backups"])
        path.write_text(json.dumps(manifest))

    return change


def _set_steps(backups, value):
    for entry in backups:
        entry["step"] = value


def _finished(backups):
    for entry in backups:
        entry.update(epoch=2, step=0, metrics={})


def _metric_shape(backups):
    for entry in backups:
        entry["metrics"] = {k: [1.0, 2.0, 3.0] for k in entry["metrics"]} or {"loss/total": [1.0]}
        entry["step"] = entry["step"] or 5


def _metric_inf(backups):
    for entry in backups:
        entry["metrics"] = {k: 1e309 for k in entry["metrics"]} or {"loss/total": 1e309}
        entry["step"] = entry["step"] or 5


def _zip_with_matching_sha(run_dir):
    import hashlib

    path = run_dir / "backup" / "manifest.json"
    manifest = json.loads(path.read_text())
    newest = run_dir / "backup" / manifest["backups"][0]["weights"]
    newest.write_bytes(b"PK\x03\x04" + b"x" * 200)
    manifest["backups"][0]["sha256"] = hashlib.sha256(newest.read_bytes()).hexdigest()
    path.write_text(json.dumps(manifest))


def _history_text(text):
    return lambda run_dir: (run_dir / "history.csv").write_text(text)


def _file_instead(name):
    def change(run_dir):
        shutil.rmtree(run_dir / name)
        (run_dir / name).write_text("mine")

    return change


REFUSED = {
    "a backup whose step disagrees with its weights": (
        edit_manifest(lambda b: _set_steps(b, 3)),
        "optimizer steps, not the",
    ),
    "a backup of a half-trained model marked finished": (
        edit_manifest(_finished),
        "optimizer steps, not the",
    ),
    "metric totals of the wrong shape": (edit_manifest(_metric_shape), "metric totals"),
    "metric totals that are infinite": (edit_manifest(_metric_inf), "metric totals"),
    "a history whose numbers are words": (
        _history_text(
            "epoch,accuracy,epoch_seconds,loss,val_accuracy,val_loss\n0,0.9,x,0.3,0.9,0.3\n"
        ),
        "is not a history relunet wrote",
    ),
    "a history of epoch numbers only": (_history_text("epoch\n0\n"), "is not a history"),
    "logs that are a file": (_file_instead("logs"), "logs folder"),
    "a backup folder that is a file": (_file_instead("backup"), "backup folder"),
}


@pytest.fixture(scope="module")
def refused(stopped, tmp_path_factory):
    """Each damaged copy of the stopped run, and what `relunet train` did with it: every
    case a command line of its own, in one process for all (tests/cli_cases.py: one
    TensorFlow import, each case with its own stderr, C libraries' lines included)."""
    copies = {
        case: damaged(stopped, tmp_path_factory.mktemp("damaged"), change)
        for case, (change, _) in REFUSED.items()
    }
    before = {case: cli_cases.files(run_dir) for case, run_dir in copies.items()}
    cases = [(["train", *ARGS, "--run-dir", str(run_dir)], run_dir) for run_dir in copies.values()]
    return before, dict(zip(copies, run_cli_cases(cases), strict=True))


@pytest.mark.parametrize("case", list(REFUSED))
def test_a_damaged_run_dir_is_refused_in_one_line_and_left_alone(refused, case):
    before, ran = refused
    result, says = ran[case], REFUSED[case][1]
    assert result.returncode == 2, result.stderr[-3000:]
    assert len(lines(result)) == 1 and says in lines(result)[0], result.stderr[-3000:]
    assert "Traceback" not in result.stderr
    assert result.files == before[case]


def test_a_zip_that_is_not_a_backup_falls_back_to_the_previous_one(stopped, tmp_path):
    run_dir = damaged(stopped, tmp_path, _zip_with_matching_sha)
    result = train(run_dir)
    assert result.returncode == 0, result.stderr[-3000:]
    assert "the newest backup is unusable" in result.stdout and "BadZipFile" in result.stdout


def test_a_truncated_best_model_of_a_trained_run_is_named(stopped, tmp_path):
    run_dir = damaged(stopped, tmp_path, lambda r: None)
    assert train(run_dir).returncode == 0
    (run_dir / "metrics.json").unlink()
    shutil.rmtree(run_dir / "backup", ignore_errors=True)
    (run_dir / "best.keras").write_bytes((run_dir / "best.keras").read_bytes()[:100])
    result = train(run_dir)
    assert result.returncode == 2
    assert len(lines(result)) == 1 and "best.keras cannot be loaded" in lines(result)[0]
    assert "--restart" in lines(result)[0]


def test_a_split_that_turns_out_empty_leaves_no_run_dir_behind(tmp_path, source):
    result = train(tmp_path / "new", "--train-split", "train[70000:]")
    assert result.returncode == 2 and len(lines(result)) == 1, result.stderr
    assert not (tmp_path / "new").exists()
    again = train(tmp_path / "new", "--train-split", "train[:1000]", "--epochs", "1")
    assert again.returncode == 0, again.stderr[-2000:]  # the same folder, now for a good split


# Inside TensorFlow's import; reading the data. SIGTERM and SIGINT share one handler
# (commands._signals_end_the_run): each is sent at one of the two moments.
@pytest.mark.parametrize("name, delay", [("TERM", 1.0), ("INT", 3.0)])
def test_a_signal_before_training_starts_ends_the_run_with_75_and_one_line(tmp_path, name, delay):
    run_dir = tmp_path / "run"
    process = subprocess.Popen(
        [sys.executable, "-m", "relunet.cli", "train", *ARGS, "--run-dir", str(run_dir)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    time.sleep(delay)
    process.send_signal(getattr(signal, f"SIG{name}"))
    _, stderr = process.communicate(timeout=120)
    assert process.returncode == 75, stderr[-3000:]
    said = [line for line in stderr.splitlines() if line.strip()]
    assert said == [
        f"relunet train: interrupted: SIG{name} received outside training; every "
        "file written is whole; rerun the same command to resume"
    ]
