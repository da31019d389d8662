"""An image file (PNG, JPEG, GIF or BMP, any size) made into an MNIST digit, in TensorFlow ops.

One function serves both `relunet predict` on image files and the exported SavedModel's
`serving_bytes` signature, so a client posting a PNG to TensorFlow Serving gets what
`relunet predict` says for the same file.

A 28x28 grayscale image is taken as it is. Anything else is made grayscale
(transparency over white), inverted if its background is light (MNIST is light ink on
black), cropped to the ink, scaled into a 20x20 box and placed with its centre of mass
at the centre of 28x28: how MNIST itself was made (LeCun et al., the MNIST page).
"""

from __future__ import annotations

import tensorflow as tf

from relunet.mnist import IMAGE_SIZE, INPUT_SHAPE, PIXEL_MAX

DIGIT_BOX = 20  # MNIST digits are scaled into a 20x20 box centred in 28x28
_INK = 0.25  # a pixel is ink above this fraction of the brightest one
_LUMA = (0.2989, 0.5870, 0.1140)  # ITU-R 601, as tf.image.rgb_to_grayscale


@tf.function(input_signature=[tf.TensorSpec([], tf.string)])
def mnist_digit(encoded: tf.Tensor) -> tf.Tensor:
    """uint8 [28, 28, 1] from the bytes of one image file."""
    image = tf.io.decode_image(encoded, expand_animations=False)
    if_mnist = tf.reduce_all(tf.equal(tf.shape(image), INPUT_SHAPE))
    return tf.cond(
        if_mnist,
        lambda: tf.reshape(image, INPUT_SHAPE),
        lambda: _like_mnist(_grayscale(tf.cast(image, tf.float32))),
    )


def mnist_digits(encoded: tf.Tensor) -> tf.Tensor:
    """uint8 [n, 28, 28, 1] from a batch [n] of image files' bytes."""
    return tf.map_fn(mnist_digit, encoded, fn_output_signature=tf.TensorSpec(INPUT_SHAPE, tf.uint8))


def _grayscale(image: tf.Tensor) -> tf.Tensor:
    """[h, w] in 0..255 from [h, w, 1..4] channels, alpha composited over white."""
    channels = tf.shape(image)[-1]
    has_alpha = tf.equal(channels % 2, 0)  # gray+alpha or RGBA
    alpha = tf.cond(
        has_alpha, lambda: image[..., -1] / PIXEL_MAX, lambda: tf.ones_like(image[..., 0])
    )
    colour = tf.cond(has_alpha, lambda: image[..., :-1], lambda: image)
    gray = tf.cond(
        tf.shape(colour)[-1] >= 3,
        lambda: tf.tensordot(colour[..., :3], tf.constant(_LUMA), axes=1),
        lambda: colour[..., 0],
    )
    return gray * alpha + PIXEL_MAX * (1.0 - alpha)


def _like_mnist(gray: tf.Tensor) -> tf.Tensor:
    """Light ink on black, cropped to the ink, in a 20x20 box centred by mass in 28x28."""
    border = tf.concat([gray[0], gray[-1], gray[:, 0], gray[:, -1]], axis=0)
    gray = tf.where(tf.reduce_mean(border) > PIXEL_MAX / 2, PIXEL_MAX - gray, gray)
    ink = tf.where(gray > _INK * tf.reduce_max(gray))
    has_ink = tf.logical_and(tf.size(ink) > 0, tf.reduce_max(gray) > 0)
    start = tf.where(has_ink, tf.reduce_min(ink, axis=0), [0, 0])
    stop = tf.where(has_ink, tf.reduce_max(ink, axis=0) + 1, tf.shape(gray, out_type=tf.int64))
    gray = gray[start[0] : stop[0], start[1] : stop[1]]
    square = _pad_to_square(gray)
    digit = tf.image.resize(square[..., None], (DIGIT_BOX, DIGIT_BOX), antialias=True)
    top, left = _mass_centred_offsets(digit[..., 0])
    margin = IMAGE_SIZE - DIGIT_BOX
    placed = tf.pad(digit, [[top, margin - top], [left, margin - left], [0, 0]])
    return tf.cast(tf.clip_by_value(tf.round(placed), 0, PIXEL_MAX), tf.uint8)


def _pad_to_square(gray: tf.Tensor) -> tf.Tensor:
    height, width = tf.shape(gray)[0], tf.shape(gray)[1]
    side = tf.maximum(height, width)
    top, left = (side - height) // 2, (side - width) // 2
    return tf.pad(gray, [[top, side - height - top], [left, side - width - left]])


def _mass_centred_offsets(digit: tf.Tensor) -> tuple[tf.Tensor, tf.Tensor]:
    """Where to put the 20x20 digit in 28x28 so that its centre of mass is the centre."""
    mass = tf.cast(tf.maximum(digit, 0.0), tf.float64)  # float64: a symmetric digit's
    total = tf.reduce_sum(mass)  # centre lands on .5 exactly and rounds to even
    positions = tf.range(DIGIT_BOX, dtype=tf.float64)
    centre = tf.constant(DIGIT_BOX / 2, tf.float64)
    row = tf.where(total > 0, tf.reduce_sum(mass * positions[:, None]) / total, centre)
    col = tf.where(total > 0, tf.reduce_sum(mass * positions[None, :]) / total, centre)
    margin = IMAGE_SIZE - DIGIT_BOX

    def offset(com):
        return tf.cast(tf.clip_by_value(tf.round(IMAGE_SIZE / 2 - com), 0, margin), tf.int32)

    return offset(row), offset(col)


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
