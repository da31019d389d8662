"""Helpers shared by the tests: running the real CLI and the real server, a real headless
browser, writing small IDX folders."""

from __future__ import annotations

import contextlib
import json
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from relunet.data import idx


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


def call(url, body=None, raw=None, headers=False):
    """(status, JSON answer) of a GET, or of a POST of `body` as JSON (or `raw` bytes);
    with `headers`, (status, answer, the response's headers)."""
    data = raw if raw is not None else (None if body is None else json.dumps(body).encode())
    request = urllib.request.Request(
        url,
        data=data,
        method="POST" if data is not None else "GET",
        headers={"Content-Type": "application/json"},
    )
    try:
        with urllib.request.urlopen(request, timeout=60) as response:
            got = response.status, json.loads(response.read()), response.headers
    except urllib.error.HTTPError as error:
        got = error.code, json.loads(error.read()), error.headers
    return got if headers else got[:2]


def start_serving(folder: Path, *args: str) -> tuple[subprocess.Popen, str]:
    """`relunet serve FOLDER ARGS` started on a free port of 127.0.0.1: (the process, its
    base URL). Its stdout and stderr together in process.stdout, as text."""
    (port,) = free_ports(1)
    process = subprocess.Popen(
        [sys.executable, "-m", "relunet.cli", "serve", str(folder), "--port", str(port), *args],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    return process, f"http://127.0.0.1:{port}"


def wait_until_ready(process: subprocess.Popen, base: str, timeout: float = 120) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        assert process.poll() is None, process.stdout.read()
        try:
            if call(f"{base}/readyz")[0] == 200:
                return
        except OSError:
            pass
        time.sleep(0.1)
    raise AssertionError(f"not ready within {timeout} s")


@contextlib.contextmanager
def serving(folder: Path, *args: str) -> Iterator[dict]:
    """`relunet serve FOLDER ARGS` on a free port of 127.0.0.1, once it is ready:
    {"base": its URL, "process": the Popen}. Stopped with SIGINT at the end."""
    process, base = start_serving(folder, *args)
    try:
        wait_until_ready(process, base)
        yield {"base": base, "process": process}
    finally:
        if process.poll() is None:
            process.send_signal(signal.SIGINT)
            process.wait(timeout=30)


@contextlib.contextmanager
def headless_chromium():
    """A real headless Chromium driven by Selenium; the test skips without Debian's
    chromium and chromium-driver (.ci/run installs them)."""
    import pytest

    webdriver = pytest.importorskip("selenium.webdriver")
    from selenium.webdriver.chrome.options import Options
    from selenium.webdriver.chrome.service import Service

    if not (shutil.which("chromium") and shutil.which("chromedriver")):
        pytest.skip(
            "Debian's chromium and chromium-driver are not installed (.ci/run installs them)"
        )
    options = Options()
    options.binary_location = shutil.which("chromium")
    for flag in (
        "--headless=new",
        "--no-sandbox",
        "--disable-gpu",
        "--disable-dev-shm-usage",
        "--disable-background-networking",
        "--disable-component-update",
        "--no-first-run",
        "--disable-sync",
        "--window-size=1200,800",
    ):
        options.add_argument(flag)
    browser = webdriver.Chrome(service=Service(shutil.which("chromedriver")), options=options)
    try:
        yield browser
    finally:
        browser.quit()
