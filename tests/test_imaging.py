"""relunet.imaging, each operation against the library that defines it: scipy.ndimage's
grey dilation and erosion, centre of mass and linear interpolation, NumPy's first and
last index. (Labelling against scipy.ndimage.label is in tests/test_reader.py.)"""

from __future__ import annotations

import numpy as np
import pytest
import tensorflow as tf
from scipy import ndimage

from relunet.imaging import measure, morphology, transform


@pytest.mark.parametrize("shape", [(1, 1), (5, 7), (40, 33), (160, 213)])
def test_the_max_and_min_filters_are_grey_dilations_and_erosions(shape):
    """dilate3, erode3 and the k x k filters (slices and doubling, not pooling)."""
    x = np.random.default_rng(sum(shape)).normal(0, 100, shape).astype(np.float32)
    assert np.array_equal(morphology.dilate3(tf.constant(x)).numpy(), ndimage.maximum_filter(x, 3))
    assert np.array_equal(morphology.erode3(tf.constant(x)).numpy(), ndimage.minimum_filter(x, 3))
    window, low = tf.function(morphology.max_filter), tf.function(morphology.min_filter)
    for k in (1, 3, 9, 41):
        found = window(tf.constant(x), tf.constant(k)).numpy()
        expected = ndimage.maximum_filter(x, size=k, mode="constant", cval=-1e9)
        assert np.array_equal(found, expected), k
        found = low(tf.constant(x), tf.constant(k)).numpy()
        assert np.array_equal(found, ndimage.minimum_filter(x, k, mode="constant", cval=1e9))


def test_a_3x3_dilation_of_a_batch_is_each_image_s_own():
    """The training distortions dilate a batch [b, h, w] at once: as 3x3 max pooling."""
    x = np.random.default_rng(0).uniform(0, 255, (5, 28, 28)).astype(np.float32)
    pooled = tf.nn.max_pool2d(x[..., None], 3, 1, "SAME")[..., 0].numpy()
    assert np.array_equal(morphology.dilate3(tf.constant(x)).numpy(), pooled)


def test_the_centre_of_mass_is_scipy_s_and_an_empty_image_s_is_its_middle():
    images = np.random.default_rng(1).uniform(0, 1, (4, 20, 28)) ** 4
    images[2] = 0.0
    row, col = (t.numpy() for t in measure.centre_of_mass(tf.constant(images)))
    for k in (0, 1, 3):
        np.testing.assert_allclose((row[k], col[k]), ndimage.center_of_mass(images[k]))
    assert (row[2], col[2]) == (9.5, 13.5)


@pytest.mark.parametrize(
    "flags", [[0, 0, 1, 1, 0, 1, 0], [1], [0, 0, 0], [1, 1, 1], [0, 0, 0, 0, 0, 1]]
)
def test_a_span_is_the_first_index_that_holds_and_one_past_the_last(flags):
    first, end = (int(t) for t in measure.span(tf.constant(np.array(flags, bool))))
    held = np.flatnonzero(flags)
    assert (first, end) == ((held[0], held[-1] + 1) if len(held) else (len(flags), 0))


def test_spans_of_a_batch_are_each_row_s_own():
    flags = np.random.default_rng(2).random((6, 9)) < 0.2
    first, end = (t.numpy() for t in measure.span(tf.constant(flags)))
    for k, row in enumerate(flags):
        assert (first[k], end[k]) == tuple(map(int, measure.span(tf.constant(row))))


def test_bilinear_sampling_is_linear_interpolation_with_zeros_outside():
    rng = np.random.default_rng(3)
    images = rng.uniform(0, 255, (2, 12, 17)).astype(np.float32)
    ys, xs = rng.uniform(-2, 14, (2, 9, 9)), rng.uniform(-2, 19, (2, 9, 9))
    found = transform.bilinear_sample(
        tf.constant(images), tf.constant(xs, tf.float32), tf.constant(ys, tf.float32)
    ).numpy()
    for k in range(2):
        padded = np.pad(images[k], 1)  # zeros outside, as the sampler has them
        expected = ndimage.map_coordinates(padded, [ys[k] + 1, xs[k] + 1], order=1, cval=0.0)
        np.testing.assert_allclose(found[k], expected, rtol=1e-4, atol=1e-3)


def test_a_square_is_padded_evenly_and_resizing_keeps_a_constant():
    grey = tf.ones([3, 8])
    square = transform.padded_square(grey).numpy()
    assert square.shape == (8, 8) and square[2:5].all() and not square[:2].any()
    assert np.allclose(transform.resized(tf.fill([40, 40], 7.0), (20, 20)).numpy(), 7.0)
