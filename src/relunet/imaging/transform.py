"""Geometric transforms of grey images, in TensorFlow ops: deskewing digits by their moments."""

from __future__ import annotations

import tensorflow as tf


def deskew(images: tf.Tensor, max_skew: float = 1.0) -> tf.Tensor:
    """float images [b, 28, 28, 1] -> the same, each sheared horizontally about its centre
    of mass so that its mixed second moment is zero: the classic moment deskew, which
    makes a slanted 1 or 7 upright (the shear is at most `max_skew` pixels a row)."""
    x = images[..., 0]
    n = tf.shape(x)[1]
    position = tf.range(n, dtype=x.dtype)
    mass = tf.reduce_sum(x, axis=[1, 2])
    total = tf.maximum(mass, 1e-6)
    row = tf.reduce_sum(x * position[None, :, None], axis=[1, 2]) / total
    col = tf.reduce_sum(x * position[None, None, :], axis=[1, 2]) / total
    dy = position[None, :, None] - row[:, None, None]
    dx = position[None, None, :] - col[:, None, None]
    mu11 = tf.reduce_sum(x * dx * dy, axis=[1, 2]) / total
    mu02 = tf.reduce_sum(x * dy * dy, axis=[1, 2]) / total
    skew = tf.where(mass > 0, mu11 / tf.maximum(mu02, 1e-6), 0.0)
    skew = tf.clip_by_value(skew, -max_skew, max_skew)
    # Output pixel (x, y) samples the input at (x + skew * (y - row), y): each row shifts.
    xs = position[None, None, :] + skew[:, None, None] * dy
    x0 = tf.floor(xs)
    fraction = xs - x0
    x0 = tf.cast(x0, tf.int32)

    def tap(xi):
        inside = (xi >= 0) & (xi < n)
        return tf.where(inside, tf.gather(x, tf.clip_by_value(xi, 0, n - 1), batch_dims=2), 0.0)

    return (tap(x0) * (1 - fraction) + tap(x0 + 1) * fraction)[..., None]
