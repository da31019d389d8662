"""Two processes on one run dir or search, a full disk, a read-only mount: real
processes, real file systems (tmpfs mounts, so the tests need root, as CI has)."""

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from relunet.cli import build_parser, config_from_args
from relunet.config import TrainConfig
from relunet.training.rundir import with_run_dir

pytestmark = pytest.mark.slow  # real processes, minutes: the full suite's

SMALL = [
    "--train-split",
    "train[:20000]",
    "--val-split",
    "train[55000:56000]",
    "--test-split",
    "test[:500]",
    "--epochs",
    "3",
    "--verbose",
    "2",
]


FAULTY = Path(__file__).with_name("faulty_relunet.py")


def relunet(*args):
    return [sys.executable, "-m", "relunet.cli", *args]


def holding(run_dir, release, *args):
    """`relunet train` that waits after its first epoch until `release` exists."""
    env = dict(os.environ, RELUNET_TEST_FAULT=f"hold-after-epoch:1:{release}")
    return subprocess.Popen(
        [sys.executable, str(FAULTY), "train", *SMALL, "--run-dir", str(run_dir), *args],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def run(*args, timeout=300):
    return subprocess.run(relunet(*args), capture_output=True, text=True, timeout=timeout)


def error_lines(result):
    return [line for line in result.stderr.splitlines() if line.strip()]


def wait_for(condition, process, timeout=240):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if condition():
            return
        assert process.poll() is None, process.communicate()[1][-3000:]
        time.sleep(0.02)
    raise AssertionError("timed out")


def rows(run_dir):
    return [line.split(",")[0] for line in (run_dir / "history.csv").read_text().splitlines()[1:]]


@pytest.fixture
def tmpfs(tmp_path):
    """Mount a small tmpfs; yields (path, resize) and unmounts at the end."""
    mounted = []

    def mount(size, options=""):
        where = tmp_path / f"disk{len(mounted)}"
        where.mkdir()
        done = subprocess.run(
            ["mount", "-t", "tmpfs", "-o", f"size={size}{options}", "tmpfs", str(where)],
            capture_output=True,
            text=True,
        )
        if done.returncode:
            pytest.skip(f"cannot mount a tmpfs here: {done.stderr.strip()}")
        mounted.append(where)
        return where

    yield mount
    for where in mounted:
        subprocess.run(["umount", "-l", str(where)], capture_output=True)


def test_a_second_train_on_a_run_dir_in_use_is_refused_naming_the_first(tmp_path, source):
    run_dir, release = tmp_path / "run", tmp_path / "release"
    first = holding(run_dir, release)
    wait_for(lambda: (run_dir / "history.csv").is_file(), first)  # it holds after epoch 1
    second = run("train", *SMALL, "--run-dir", str(run_dir))
    release.touch()
    assert second.returncode == 2
    assert error_lines(second) == [
        f"relunet train: error: The run dir {run_dir} is in use by process {first.pid} on "
        + error_lines(second)[0].split(f"process {first.pid} on ", 1)[1]
    ]
    assert "; wait for it to finish or stop it first." in error_lines(second)[0]
    _, stderr = first.communicate(timeout=300)
    assert first.returncode == 0, stderr[-3000:]
    assert rows(run_dir) == ["0", "1", "2"]  # one row per epoch: nobody else wrote


def test_a_lock_left_by_a_killed_process_is_taken_over(tmp_path, source):
    run_dir = tmp_path / "run"
    first = holding(run_dir, tmp_path / "never")
    wait_for(lambda: (run_dir / "history.csv").is_file(), first)
    first.send_signal(signal.SIGKILL)
    first.wait(timeout=60)
    assert "process" in (run_dir / ".lock").read_text()  # it still names the dead holder
    again = run("train", *SMALL, "--run-dir", str(run_dir))
    assert again.returncode == 0, again.stderr[-3000:]
    assert rows(run_dir) == ["0", "1", "2"]


def test_a_second_search_on_a_tuning_project_in_use_is_refused(tmp_path, source):
    args = [
        "tune",
        "--max-trials",
        "3",
        "--epochs",
        "2",
        "--train-split",
        "train[:5000]",
        "--val-split",
        "train[55000:56000]",
        "--directory",
        str(tmp_path / "tuning"),
        "--verbose",
        "0",
    ]
    first = subprocess.Popen(
        relunet(*args), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
    )
    lock = tmp_path / "tuning" / ".relunet.lock"
    wait_for(lambda: lock.is_file() and "process" in lock.read_text(), first)
    second = run(*args)
    assert second.returncode == 2
    lines = error_lines(second)
    assert len(lines) == 1 and f"is in use by process {first.pid}" in lines[0]
    _, stderr = first.communicate(timeout=600)
    assert first.returncode == 0, stderr[-3000:]


def test_a_full_disk_stops_training_with_one_line_and_the_rerun_continues(tmp_path, tmpfs, source):
    disk = tmpfs("9m")
    run_dir = disk / "run"
    # best.keras and each backup take about 3.2 MB: the disk fills during epoch 1 or 2.
    args = ["train", *SMALL, "--run-dir", str(run_dir), "--backup-every", "64"]
    full = run(*args)
    assert full.returncode == 2, full.stderr[-3000:]
    lines = error_lines(full)
    assert len(lines) == 1 and "No space left on device" in lines[0], full.stderr[-3000:]
    assert "Traceback" not in full.stderr
    assert not list(run_dir.rglob("tmp-*"))  # nothing half-written left behind
    if (run_dir / "backup" / "manifest.json").is_file():
        json.loads((run_dir / "backup" / "manifest.json").read_text())  # still whole

    subprocess.run(["mount", "-o", "remount,size=64m", str(disk)], check=True)
    again = run(*args)
    assert again.returncode == 0, again.stderr[-3000:]
    assert rows(run_dir) == ["0", "1", "2"]
    assert json.loads((run_dir / "metrics.json").read_text())["epochs_completed"] == 3


def test_a_run_dir_on_a_read_only_mount_is_refused_before_any_work(tmpfs):
    disk = tmpfs("1m", ",ro")
    start = time.monotonic()
    result = run("train", "--run-dir", str(disk / "run"))
    assert result.returncode == 2
    assert error_lines(result) == [
        f"relunet train: error: The run dir {disk / 'run'} cannot be "
        f"written: {disk} is read-only (or not ours to write)."
    ]
    assert time.monotonic() - start < 5  # answered before TensorFlow is imported
    assert not any(Path(disk).iterdir())


def test_without_a_run_dir_the_same_command_resumes_its_unfinished_run(tmp_path, source):
    """The README's promise for a plain `relunet train`: kill it, run the same command
    again, and it continues. A run another process holds, a finished run and a run of
    another configuration are left alone: those get a new runs/<timestamp>."""
    runs = tmp_path / "runs"
    env = dict(os.environ, RELUNET_TEST_FAULT=f"hold-after-epoch:1:{tmp_path / 'never'}")
    first = subprocess.Popen(
        [sys.executable, str(FAULTY), "train", *SMALL],
        cwd=tmp_path,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    wait_for(lambda: list(runs.glob("*/history.csv")), first)
    (run_dir,) = [p.parent for p in runs.glob("*/history.csv")]
    same = config_from_args(TrainConfig, build_parser().parse_args(["train", *SMALL]))
    other = config_from_args(
        TrainConfig, build_parser().parse_args(["train", *SMALL, "--lr", "2e-3"])
    )
    assert with_run_dir(same, runs).run_dir != str(run_dir)  # held by the first process
    first.send_signal(signal.SIGKILL)
    first.wait(timeout=60)
    assert with_run_dir(same, runs).run_dir == str(run_dir)
    assert with_run_dir(other, runs).run_dir != str(run_dir)

    again = subprocess.run(
        relunet("train", *SMALL), cwd=tmp_path, capture_output=True, text=True, timeout=300
    )
    assert again.returncode == 0, again.stderr[-3000:]
    assert f"run: continuing runs/{run_dir.name}" in again.stdout
    assert [p.name for p in runs.iterdir()] == [run_dir.name]
    assert rows(run_dir) == ["0", "1", "2"]
    assert json.loads((run_dir / "metrics.json").read_text())["optimizer_steps"] == 3 * 157
    assert with_run_dir(same, runs).run_dir != str(run_dir)  # finished: the next run is new
