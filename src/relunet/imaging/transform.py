"""Geometric transforms of grey images in TensorFlow ops: bilinear sampling (which the
training distortions and the model's deskew share), deskewing, squaring and resizing."""

from __future__ import annotations

import tensorflow as tf

from relunet.imaging.measure import centre_of_mass


def bilinear_sample(images: tf.Tensor, xs: tf.Tensor, ys: tf.Tensor) -> tf.Tensor:
    """Grey images [b, h, w] sampled bilinearly at float pixel coordinates xs, ys
    (broadcastable to [b, h', w']), zeros outside the image."""
    shape = tf.shape(images)
    b, h, w = shape[0], shape[1], shape[2]
    xs, ys = xs + tf.zeros_like(ys), ys + tf.zeros_like(xs)
    x0, y0 = tf.floor(xs), tf.floor(ys)
    fx, fy = xs - x0, ys - y0
    x0, y0 = tf.cast(x0, tf.int32), tf.cast(y0, tf.int32)
    flat = tf.reshape(images, [b, -1])

    def tap(yi, xi):
        valid = (xi >= 0) & (xi < w) & (yi >= 0) & (yi < h)
        index = tf.clip_by_value(yi, 0, h - 1) * w + tf.clip_by_value(xi, 0, w - 1)
        values = tf.gather(flat, tf.reshape(index, [b, -1]), batch_dims=1)
        return tf.where(valid, tf.reshape(values, tf.shape(index)), 0.0)

    top = tap(y0, x0) * (1 - fx) + tap(y0, x0 + 1) * fx
    bottom = tap(y0 + 1, x0) * (1 - fx) + tap(y0 + 1, x0 + 1) * fx
    return top * (1 - fy) + bottom * fy


def deskew(images: tf.Tensor, max_skew: float = 1.0) -> tf.Tensor:
    """float images [b, 28, 28, 1] -> the same, each sheared horizontally about its centre
    of mass so that its mixed second moment is zero: the classic moment deskew, which
    makes a slanted 1 or 7 upright (the shear is at most `max_skew` pixels a row)."""
    x = images[..., 0]
    position = tf.range(tf.shape(x)[1], dtype=x.dtype)
    mass = tf.reduce_sum(x, axis=[1, 2])
    total = tf.maximum(mass, 1e-6)
    row, col = centre_of_mass(x)
    dy = position[None, :, None] - row[:, None, None]
    dx = position[None, None, :] - col[:, None, None]
    mu11 = tf.reduce_sum(x * dx * dy, axis=[1, 2]) / total
    mu02 = tf.reduce_sum(x * dy * dy, axis=[1, 2]) / total
    skew = tf.where(mass > 0, mu11 / tf.maximum(mu02, 1e-6), 0.0)
    skew = tf.clip_by_value(skew, -max_skew, max_skew)
    # Output pixel (x, y) samples the input at (x + skew * (y - row), y): each row shifts.
    xs = position[None, None, :] + skew[:, None, None] * dy
    return bilinear_sample(x, xs, position[None, :, None])[..., None]


def centred(images: tf.Tensor) -> tf.Tensor:
    """Images [n, h, w], each moved by whole pixels (rolled round) so that its centre of
    mass is the middle pixel, ((h - 1) / 2, (w - 1) / 2) rounded."""
    row, col = centre_of_mass(images)
    middle = (tf.cast(tf.shape(images)[1:], images.dtype) - 1) / 2
    dy = tf.cast(tf.round(middle[0] - row), tf.int32)
    dx = tf.cast(tf.round(middle[1] - col), tf.int32)
    return tf.map_fn(
        lambda args: tf.roll(args[0], shift=[args[1], args[2]], axis=[0, 1]),
        (images, dy, dx),
        fn_output_signature=images.dtype,
    )


def padded_square(grey: tf.Tensor) -> tf.Tensor:
    """A grey image [h, w] padded with zeros, evenly on both sides, to a square."""
    height, width = tf.shape(grey)[0], tf.shape(grey)[1]
    side = tf.maximum(height, width)
    top, left = (side - height) // 2, (side - width) // 2
    return tf.pad(grey, [[top, side - height - top], [left, side - width - left]])


def resized(grey: tf.Tensor, size: tuple[int, int]) -> tf.Tensor:
    """A grey image [h, w] scaled to `size` (bilinear, antialiased when shrinking)."""
    return tf.image.resize(grey[..., None], size, antialias=True)[..., 0]


def upright(grey: tf.Tensor, orientation: tf.Tensor) -> tf.Tensor:
    """A grey image [h, w] turned as its Exif orientation (1 to 8) says, to be seen as
    taken: 2 mirrored, 3 turned half round, 4 flipped, 5 transposed, 6 turned a quarter
    clockwise, 7 transposed across the other diagonal, 8 a quarter anticlockwise. On the
    float image (TensorFlow's oneDNN transpose warns on stderr for integer pixels)."""
    return tf.switch_case(
        tf.clip_by_value(orientation - 1, 0, 7),
        [
            lambda: grey,
            lambda: grey[:, ::-1],
            lambda: grey[::-1, ::-1],
            lambda: grey[::-1],
            lambda: tf.transpose(grey),
            lambda: tf.transpose(grey)[:, ::-1],
            lambda: tf.transpose(grey)[::-1, ::-1],
            lambda: tf.transpose(grey)[::-1],
        ],
    )
