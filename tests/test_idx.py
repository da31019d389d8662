"""IDX files: the real MNIST reads back whole, and every malformation is named."""

import gzip
import shutil

import numpy as np
import pytest
from helpers import write_idx_folder

from relunet.base.errors import RelunetError
from relunet.data import idx

# Class counts of the genuine MNIST (train, test), from its documentation.
TRAIN_COUNTS = [5923, 6742, 5958, 6131, 5842, 5421, 5918, 6265, 5851, 5949]
TEST_COUNTS = [980, 1135, 1032, 1010, 982, 892, 958, 1028, 974, 1009]


def test_real_mnist_reads_as_genuine(mnist_dir):
    folder = idx.read_folder(mnist_dir)
    train, test = folder.splits["train"], folder.splits["test"]
    assert train.images.shape == (60000, 28, 28, 1) and train.images.dtype == np.uint8
    assert test.images.shape == (10000, 28, 28, 1)
    assert np.bincount(train.labels).tolist() == TRAIN_COUNTS
    assert np.bincount(test.labels).tolist() == TEST_COUNTS
    assert folder.is_genuine_mnist


def test_uncompressed_files_read_like_gzipped_ones(tmp_path):
    gz = write_idx_folder(tmp_path / "gz")
    plain = tmp_path / "plain"
    plain.mkdir()
    for path in gz.iterdir():
        (plain / path.stem).write_bytes(gzip.decompress(path.read_bytes()))
    a, b = idx.read_folder(gz), idx.read_folder(plain)
    assert np.array_equal(a.splits["train"].images, b.splits["train"].images)
    assert a.fingerprint == b.fingerprint
    assert not a.is_genuine_mnist


def _corrupt(folder, stem, mutate):
    path = folder / f"{stem}.gz"
    path.write_bytes(gzip.compress(mutate(gzip.decompress(path.read_bytes()))))


def _set_int(data, offset, value):
    return data[:offset] + int(value).to_bytes(4, "big") + data[offset + 4 :]


MALFORMED = {
    "image magic": ("train-images-idx3-ubyte", lambda d: _set_int(d, 0, 2049), "magic number 2049"),
    "label magic": ("t10k-labels-idx1-ubyte", lambda d: _set_int(d, 0, 2051), "magic number 2051"),
    "not 28x28": ("train-images-idx3-ubyte", lambda d: _set_int(d, 8, 32), "32x28 images"),
    "truncated": ("train-images-idx3-ubyte", lambda d: d[:-100], "truncated or padded"),
    "padded": ("t10k-labels-idx1-ubyte", lambda d: d + b"\0", "truncated or padded"),
    "short header": ("t10k-images-idx3-ubyte", lambda d: d[:10], "too short"),
    "count mismatch": (
        "train-labels-idx1-ubyte",
        lambda d: _set_int(d, 4, 29)[:-1],
        "counts must agree",
    ),
    "label out of range": ("train-labels-idx1-ubyte", lambda d: d[:-1] + b"\x0c", "label 12"),
}


@pytest.mark.parametrize("case", sorted(MALFORMED))
def test_malformed_file_is_named_with_its_problem(tmp_path, case):
    stem, mutate, problem = MALFORMED[case]
    folder = write_idx_folder(tmp_path)
    _corrupt(folder, stem, mutate)
    with pytest.raises(RelunetError, match=problem) as error:
        idx.read_folder(folder)
    assert stem[:5] in str(error.value) and str(folder) in str(error.value)  # which folder


def test_unreadable_gzip_is_named(tmp_path):
    folder = write_idx_folder(tmp_path)
    (folder / "t10k-images-idx3-ubyte.gz").write_bytes(b"not gzip at all")
    with pytest.raises(RelunetError, match=r"t10k-images-idx3-ubyte\.gz is not a readable gzip"):
        idx.read_folder(folder)


def test_missing_file_lists_what_is_needed(tmp_path):
    folder = write_idx_folder(tmp_path)
    (folder / "train-labels-idx1-ubyte.gz").unlink()
    with pytest.raises(
        RelunetError, match=r"no train-labels-idx1-ubyte or train-labels-idx1-ubyte\.gz"
    ):
        idx.read_folder(folder)


def test_missing_folder_is_named(tmp_path):
    with pytest.raises(RelunetError, match="does not exist"):
        idx.read_folder(tmp_path / "nowhere")


def test_sha256sums_mismatch_is_refused(tmp_path, mnist_dir):
    folder = write_idx_folder(tmp_path / "data")
    shutil.copy(mnist_dir / "SHA256SUMS", folder / "SHA256SUMS")
    with pytest.raises(RelunetError, match="does not match its sha256 in SHA256SUMS"):
        idx.read_folder(folder)
