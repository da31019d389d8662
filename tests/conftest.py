"""Shared fixtures: the real MNIST files, one tfds data dir per test run, seeding.

The tests never touch the network. They read the genuine MNIST IDX files from
$RELUNET_DATA_DIR (CI points it at ../shared/data/mnist, the default here too) and
prepare them once per test run into a private tfds data dir, which subprocesses
inherit through $TFDS_DATA_DIR. Without those files, the tests that need them skip
(through the `mnist_dir` fixture, which `source`, `trained_run` and `reader_run` use)
and the others run.

The suite runs on pytest-xdist workers, three on a 2-core machine (pyproject.toml; two
for the quick tier). The controller imports this file first and makes the run's scratch
folder; the workers inherit its name, so MNIST is prepared once and each trained model is
trained once, by whichever worker asks first (the others wait on a lock), and the
controller removes the folder at the end. `-n 0` runs everything in one process, the
same way.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
MNIST_DIR = Path(os.environ.get("RELUNET_DATA_DIR") or REPO.parent / "shared" / "data" / "mnist")

# Set before TensorFlow is imported anywhere, and inherited by every subprocess.
os.environ["RELUNET_DATA_DIR"] = str(MNIST_DIR)
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
# RELUNET_TEST_TFDS_DIR keeps the prepared copy between runs while developing.
_KEEP_TFDS_DIR = bool(os.environ.get("RELUNET_TEST_TFDS_DIR"))
_TFDS_DIR = os.environ.get("RELUNET_TEST_TFDS_DIR") or os.environ.setdefault(
    "RELUNET_TEST_RUN_DIR", tempfile.mkdtemp(prefix="relunet-tfds-")
)
os.environ["TFDS_DATA_DIR"] = _TFDS_DIR
_WORKER = os.environ.get("PYTEST_XDIST_WORKER", "main")
# XLA's compilation cache: the worker's own (not the user's, not shared by two writers).
os.environ["RELUNET_XLA_CACHE"] = os.path.join(_TFDS_DIR, f"xla-cache-{_WORKER}")
# The same cache for the commands the tests run in this process (TensorFlow reads it
# once, when it starts; relunet's command line sets it for its own processes).
os.environ.setdefault(
    "TF_XLA_FLAGS", f"--tf_xla_persistent_cache_directory={os.environ['RELUNET_XLA_CACHE']}"
)


def pytest_addoption(parser):
    parser.addoption(
        "--slow",
        action="store_true",
        help="run the long form of the fault-injection suite (more kills per run)",
    )


def pytest_sessionfinish(session, exitstatus):
    if not _KEEP_TFDS_DIR and not hasattr(session.config, "workerinput"):  # the controller
        shutil.rmtree(_TFDS_DIR, ignore_errors=True)


def pytest_xdist_auto_num_workers(config):
    """`-n auto`: a worker per core and one more, at most 4 (each holds a TensorFlow of its
    own). The extra one runs while the others wait on their servers and subprocesses: the
    whole suite on the 2-core machine took 1,422 s on three workers, 1,538 s on two. The
    quick tier (`-m "not slow"`) waits on neither, and a worker per core is enough: 136
    and 143 s on two workers, 146 and 145 s on three, in turn on the same machine."""
    quick = config.getoption("markexpr", "").strip() == "not slow"
    return max(1, min((os.cpu_count() or 1) + (0 if quick else 1), 4))


# The files that hold the suite's longest work, first, so that no worker starts one of
# them while the others are finishing: test_reading's model takes 4 minutes to train
# and serves 4 tests; searches killed; 1,205 files read; a command run for each flag.
# pyproject.toml turns off xdist's own order (files with the most tests first), which
# left test_reading and test_reading_sets to the end.
LONG_FIRST = (
    "test_reading.py",
    "faults/test_tune_faults.py",
    "test_reading_sets.py",
    "test_flags.py",
    "test_benchmarks.py",
    "faults/test_faults.py",
    "test_tune.py",
    "test_notebooks.py",
)


def pytest_collection_modifyitems(config, items):
    """LONG_FIRST's files first, in its order; the rest after them as collected."""
    here = Path(__file__).parent
    rank = {here / name: i for i, name in enumerate(LONG_FIRST)}
    items.sort(key=lambda item: rank.get(item.path, len(LONG_FIRST)))


@contextlib.contextmanager
def run_wide(name: str) -> Iterator[Path]:
    """A folder of the run's scratch dir that one worker at a time may fill: the first to
    come makes it, the others wait and find it made."""
    with open(Path(_TFDS_DIR) / f".{name}.lock", "a") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        try:
            yield Path(_TFDS_DIR) / name
        finally:
            fcntl.flock(lock, fcntl.LOCK_UN)


@pytest.fixture(autouse=True)
def _seed():
    import keras

    keras.utils.set_random_seed(1234)


HAVE_MNIST = any(
    (MNIST_DIR / name).is_file()
    for name in ("train-images-idx3-ubyte.gz", "train-images-idx3-ubyte")
)


@pytest.fixture(scope="session")
def mnist_dir() -> Path:
    """The folder of the four MNIST IDX files; the tests that need it skip without it."""
    if not HAVE_MNIST:
        pytest.skip(f"no MNIST IDX files in {MNIST_DIR}; set RELUNET_DATA_DIR to a folder of them")
    return MNIST_DIR


@pytest.fixture(scope="session")
def source(mnist_dir):
    """MNIST prepared into this session's tfds data dir from the real IDX files."""
    from relunet import data

    return data.find_source("mnist", str(mnist_dir), _TFDS_DIR)


@pytest.fixture(scope="session")
def trained_run(source) -> Path:
    """A run dir holding a model trained for one epoch on 10000 real images (~95%): one
    for the whole test run, which no test writes into."""
    from relunet import TrainConfig
    from relunet.training.train import train

    with run_wide("trained-run") as run_dir:
        if not (run_dir / "metrics.json").is_file():
            config = TrainConfig(
                train_split="train[:10000]",
                val_split="train[50000:51000]",
                test_split="test[:1000]",
                epochs=1,
                run_dir=str(run_dir),
                verbose=0,
            )
            train(config)
    return run_dir


@pytest.fixture(scope="session")
def small_export() -> Path:
    """A folder of versions whose version 1 is relunet's export of an untrained
    784-8-8-10 ReluNet: one for the whole test run (each export traces the whole reader,
    4-5 s), which tests read and serve and none writes into."""
    from relunet.config import ModelConfig
    from relunet.inference.export import export_saved_model
    from relunet.training.model import build_model

    with run_wide("small-export") as folder:
        if not (folder / "1" / "saved_model.pb").is_file():
            export_saved_model(build_model(ModelConfig(width=8)), folder, verbose=False)
    return folder


@pytest.fixture(scope="session")
def reader_run(source) -> Path:
    """A run dir holding `--preset robust` trained briefly (3 epochs on 20000 images and
    a finder of 800 steps; 135 s alone on the 2-core machine with MNIST's preparation,
    about twice that in CI beside two other workers): a model that reads numbers on paper
    and says "not a digit". One for the whole test run, which no test writes into."""
    from relunet import TrainConfig
    from relunet.config import PRESETS
    from relunet.training.train import train

    with run_wide("reader-run") as run_dir:
        if not (run_dir / "metrics.json").is_file():
            config = TrainConfig(
                **{
                    **PRESETS["robust"],
                    "train_split": "train[:20000]",
                    "test_split": "test[:2000]",
                    "epochs": 3,
                    "finder_steps": 800,
                    "run_dir": str(run_dir),
                    "verbose": 0,
                }
            )
            train(config)
    return run_dir
