"""What a photo and a pen do to a row of writing, drawn on training rows
(relunet.data.rows): strokes broken where a threshold or a skipping pen breaks them, and
specks of dirt that are nothing to read. Keyed draws, as the rows' own."""

from __future__ import annotations

import tensorflow as tf

from relunet.imaging.measure import span
from relunet.imaging.rows import INK

BROKEN = 0.5  # a row's strokes are broken this often, ...
BREAKS = 6  # ... at up to this many places, each a disc of ink erased
SPECKS = 0.25  # a row has specks of dirt this often (up to three)


def broken(key: tf.Tensor, canvas: tf.Tensor) -> tf.Tensor:
    """Some rows' strokes broken: up to BREAKS discs of ink erased (a photo's threshold
    breaks thin strokes, a pen skips)."""
    b, w = tf.shape(canvas)[0], tf.shape(canvas)[2]
    where_key, size_key, which_key = tf.unstack(tf.random.experimental.stateless_split(key, num=3))
    at = tf.random.stateless_categorical(
        tf.math.log(tf.reshape(canvas, [b, -1]) + 1e-6), BREAKS, where_key
    )
    ys = tf.cast(at // tf.cast(w, tf.int64), tf.float32)
    xs = tf.cast(at % tf.cast(w, tf.int64), tf.float32)
    radius = tf.random.stateless_uniform([b, BREAKS, 1, 1], size_key, 0.8, 1.7)
    is_broken = tf.random.stateless_uniform([b, 1, 1], which_key) < BROKEN

    def disc(distance):
        return tf.where(
            is_broken[..., None], tf.clip_by_value(radius + 0.5 - distance, 0.0, 1.0), 0.0
        )

    return canvas * (1.0 - _discs(ys, xs, disc, tf.shape(canvas)))


def specks(key: tf.Tensor, canvas: tf.Tensor) -> tf.Tensor:
    """Specks of dirt (nothing to read) for some rows: up to three dots smaller than a
    decimal point, within the ink's rows and a little beyond its ends."""
    b = tf.shape(canvas)[0]
    keys = tf.unstack(tf.random.experimental.stateless_split(key, num=5))
    top, bottom = span(tf.reduce_any(canvas > INK, 2))
    left, right = span(tf.reduce_any(canvas > INK, 1))
    u = tf.random.stateless_uniform([b, 3, 2], keys[0])
    ys = tf.cast(top, tf.float32)[:, None] + u[..., 0] * tf.cast(bottom - top, tf.float32)[:, None]
    reach = tf.cast(right - left, tf.float32)[:, None] + 8.0
    xs = tf.cast(left, tf.float32)[:, None] - 4.0 + u[..., 1] * reach
    radius = tf.random.stateless_uniform([b, 3, 1, 1], keys[1], 0.3, 0.8)
    level = tf.random.stateless_uniform([b, 3, 1, 1], keys[2], 0.4, 1.0)
    some = tf.random.stateless_uniform([b, 3], keys[3]) < SPECKS / 2

    def dot(distance):
        dots = tf.clip_by_value(radius + 0.5 - distance, 0.0, 1.0) * level
        return tf.where(some[..., None, None], dots, 0.0)

    return _discs(ys, xs, dot, tf.shape(canvas))


def _discs(ys: tf.Tensor, xs: tf.Tensor, value, shape: tf.Tensor) -> tf.Tensor:
    """float [b, h, w]: at each pixel, the largest `value`(its distance from each centre
    (ys, xs) [b, k]) [b, k, 5, 5], 0 where none reaches. Worked out on the 5 x 5 pixels
    around each centre's pixel, not on the whole canvas: a value is 0 further away
    (breaks reach 2.2 px from a whole pixel, specks 1.3 px), and each distance is
    computed as on the whole canvas, so the values are the very same."""
    b, h, w = shape[0], shape[1], shape[2]
    around = tf.range(-2.0, 3.0)
    rows = tf.floor(ys)[..., None, None] + around[:, None]  # [b, k, 5, 1]
    cols = tf.floor(xs)[..., None, None] + around[None, :]  # [b, k, 1, 5]
    distance = tf.sqrt((rows - ys[..., None, None]) ** 2 + (cols - xs[..., None, None]) ** 2)
    inside = (rows >= 0) & (rows < tf.cast(h, tf.float32)) & (cols >= 0)
    inside &= cols < tf.cast(w, tf.float32)
    values = tf.where(inside, value(distance), 0.0)  # outside: 0 on a pixel clipped to it
    row = tf.clip_by_value(tf.cast(rows, tf.int32), 0, h - 1) + tf.zeros_like(cols, tf.int32)
    col = tf.clip_by_value(tf.cast(cols, tf.int32), 0, w - 1) + tf.zeros_like(rows, tf.int32)
    batch = tf.broadcast_to(tf.range(b)[:, None, None, None], tf.shape(row))
    where = tf.reshape(tf.stack([batch, row, col], -1), [-1, 3])
    return tf.tensor_scatter_nd_max(tf.zeros([b, h, w]), where, tf.reshape(values, [-1]))
