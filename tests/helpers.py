"""Helpers shared by the tests: running the real CLI, writing small IDX folders."""

from __future__ import annotations

import json
import socket
import subprocess
import sys
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from relunet import idx


def run_cli(*args: str, timeout: float = 300) -> subprocess.CompletedProcess:
    """Run `relunet ARGS...` as a real subprocess of this interpreter."""
    return subprocess.run(
        [sys.executable, "-m", "relunet.cli", *args],
        capture_output=True,
        text=True,
        timeout=timeout,
    )


@dataclass
class Ran:
    """What one command line of `run_cli_cases` did: as subprocess.run reports it, and
    the sha256 of every file in its folder after it ran."""

    returncode: int
    stdout: str
    stderr: str
    files: dict[str, str] = field(default_factory=dict)


def run_cli_cases(cases: list[tuple[list[str], Path]], timeout: float = 600) -> list[Ran]:
    """Run `relunet ARGS` in FOLDER for each (ARGS, FOLDER), one after another in one real
    process (tests/cli_cases.py): TensorFlow is imported once for all of them, and each
    still gets stdout and stderr of its own, C libraries' lines included. For cases that
    would each pay for the import in a process of their own."""
    script = Path(__file__).with_name("cli_cases.py")
    body = [
        {"args": args, "cwd": str(folder), "env": {"TF_CONFIG": None}} for args, folder in cases
    ]
    done = subprocess.run(
        [sys.executable, str(script)],
        input=json.dumps(body),
        capture_output=True,
        text=True,
        timeout=timeout,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    return [
        Ran(r["code"], r["stdout"], r["stderr"], r["files"])
        for r in json.loads(done.stdout.splitlines()[-1])
    ]


def free_ports(count: int = 1) -> list[int]:
    """Ports free on localhost right now (all held open together, so they differ)."""
    sockets = [socket.socket() for _ in range(count)]
    try:
        for s in sockets:
            s.bind(("127.0.0.1", 0))
        return [s.getsockname()[1] for s in sockets]
    finally:
        for s in sockets:
            s.close()


def error_lines(result: subprocess.CompletedProcess) -> list[str]:
    return [line for line in result.stderr.splitlines() if line.strip()]


def write_idx_folder(folder: Path, n_train: int = 30, n_test: int = 10, seed: int = 0) -> Path:
    """A small, valid folder of the four gzipped IDX files with random digits."""
    rng = np.random.default_rng(seed)
    folder.mkdir(parents=True, exist_ok=True)
    for split, n in (("train", n_train), ("test", n_test)):
        images, labels = idx.FILES[split]
        idx.write_images(folder / f"{images}.gz", rng.integers(0, 256, (n, 28, 28), np.uint8))
        idx.write_labels(folder / f"{labels}.gz", np.arange(n, dtype=np.uint8) % 10)
    return folder
