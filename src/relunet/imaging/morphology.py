"""Grey morphology in TensorFlow ops: dilation and erosion by a square, of any size.

Written in slices rather than pooling: `tf.nn.max_pool2d` is several times slower on
one channel (the photo path's images), and a padded copy of an edge never wins a max,
so the answers are scipy.ndimage's grey dilation and erosion (tests/test_images.py).
"""

from __future__ import annotations

import tensorflow as tf


def dilate3(x: tf.Tensor) -> tf.Tensor:
    """Grey dilation of images [..., h, w] by a 3x3 square, same size (3x3 max pooling
    with SAME padding)."""
    pad = [[0, 0]] * (len(x.shape) - 2) + [[1, 1], [1, 1]]
    edged = tf.pad(x, pad, "SYMMETRIC")  # an edge's copy never wins
    rows = tf.maximum(tf.maximum(edged[..., :-2, :], edged[..., 1:-1, :]), edged[..., 2:, :])
    return tf.maximum(tf.maximum(rows[..., :-2], rows[..., 1:-1]), rows[..., 2:])


def erode3(x: tf.Tensor) -> tf.Tensor:
    """Grey erosion of images [..., h, w] by a 3x3 square, same size."""
    return -dilate3(-x)


def max_filter(x: tf.Tensor, k: tf.Tensor) -> tf.Tensor:
    """Grey dilation of [h, w] by a k x k square (k odd, a tensor), same size: separable,
    each direction a windowed max built by doubling (log2 k steps, not k)."""
    return _directional_max(_directional_max(x, k, axis=0), k, axis=1)


def min_filter(x: tf.Tensor, k: tf.Tensor) -> tf.Tensor:
    """Grey erosion of [h, w] by a k x k square."""
    return -max_filter(-x, k)


def level_runs(mask: tf.Tensor, length: tf.Tensor) -> tf.Tensor:
    """bool [h, w]: the pixels of `mask` [h, w] that lie on a level run of at least
    `length` (odd) pixels of it: a grey opening along rows."""
    on = tf.cast(mask, tf.float32)
    eroded = -_directional_max(-on, length, axis=1)
    return _directional_max(eroded, length, axis=1) > 0.5


def _directional_max(x: tf.Tensor, k: tf.Tensor, axis: int) -> tf.Tensor:
    """Max over a centred window of length k (odd) along `axis` (0 or 1); padding never
    wins."""
    n = tf.shape(x)[axis]
    half = [k // 2, k // 2]
    m = tf.pad(x, [half, [0, 0]] if axis == 0 else [[0, 0], half], constant_values=-1e9)

    def window(m, start, length):
        return m[start : start + length] if axis == 0 else m[:, start : start + length]

    def double(m, span):  # m[i] = max(padded[i : i + span]) -> the same for 2 span
        rest = tf.shape(m)[axis] - span  # the last span - 1 would reach past the end
        return tf.maximum(window(m, 0, rest), window(m, span, rest)), span * 2

    m, span = tf.while_loop(
        lambda m, span: span * 2 <= k,
        double,
        (m, tf.constant(1)),
        shape_invariants=(tf.TensorShape([None, None]), tf.TensorShape([])),
    )
    # A window of k is two overlapping windows of span (span <= k < 2 span).
    return tf.maximum(window(m, 0, n), window(m, k - span, n))
