"""The steps that find a digit's ink on real paper, in TensorFlow ops: the page made
grey and small, the sheet, the paper's level, Otsu's threshold, whether the ink stands
out, its contrast, its stroke width (relunet.reading.digits strings them together,
relunet.reading.components keeps what is worth keeping). Each takes and gives grey
images [h, w] of any size, floats in 0..255, and runs inside one traced function.
"""

from __future__ import annotations

import tensorflow as tf

from relunet.base.mnist import PIXEL_MAX
from relunet.imaging.measure import span
from relunet.imaging.morphology import erode3, max_filter, min_filter

LUMA = (0.2989, 0.5870, 0.1140)  # ITU-R 601, as tf.image.rgb_to_grayscale
# Larger images are first scaled down, to at most SHORT_SIDE px on their shorter side and
# LONG_SIDE on their longer: a digit ends up 20 px tall anyway, and a row of six digits
# written across a page keeps each about 100 px wide.
SHORT_SIDE = 160
LONG_SIDE = 640
MIN_CONTRAST = 24.0  # grey levels between paper and ink below which there is no digit
NOISE_RATIO = 6.0  # ... or fewer than this many times the paper's own noise
PAPER_SOLID = 0.85  # a sheet on a dark surround: this share of its pixels is light


def grayscale(image: tf.Tensor) -> tf.Tensor:
    """[h, w] in 0..255 from [h, w, 1..4] channels, transparency composited over white,
    or over black where what is drawn is light (white ink on a transparent canvas, as a
    drawing app in dark mode saves it): the ink stands out either way."""
    channels = tf.shape(image)[-1]
    has_alpha = tf.equal(channels % 2, 0)  # grey + alpha, or RGBA
    alpha = tf.cond(
        has_alpha,
        lambda: image[..., -1] / PIXEL_MAX,
        lambda: tf.ones_like(image[..., 0]),
    )
    colour = tf.cond(has_alpha, lambda: image[..., :-1], lambda: image)
    gray = tf.cond(
        tf.shape(colour)[-1] >= 3,
        lambda: tf.tensordot(colour[..., :3], tf.constant(LUMA), axes=1),
        lambda: colour[..., 0],
    )
    drawn = tf.reduce_sum(gray * alpha) / tf.maximum(tf.reduce_sum(alpha), 1.0)
    backdrop = tf.where(drawn > PIXEL_MAX / 2, 0.0, PIXEL_MAX)
    return gray * alpha + backdrop * (1.0 - alpha)


def shrink(image: tf.Tensor) -> tuple[tf.Tensor, tf.Tensor]:
    """(the grey image [h', w'] at most SHORT_SIDE by LONG_SIDE pixels, the factor it
    was scaled by (at most 1)), from decoded pixels [h, w, channels]: scaled (antialiased)
    before it is made grey, so a large photo's pixels are read once, not three times."""
    shape = tf.cast(tf.shape(image)[:2], tf.float32)
    factor = tf.minimum(
        1.0,
        tf.minimum(SHORT_SIDE / tf.reduce_min(shape), LONG_SIDE / tf.reduce_max(shape)),
    )
    size = tf.maximum(tf.cast(tf.round(shape * factor), tf.int32), 1)
    small = tf.cond(
        factor < 1.0,
        lambda: tf.image.resize(image, size, antialias=True),
        lambda: tf.cast(image, tf.float32),
    )
    return grayscale(small), factor


def reduction(height: tf.Tensor, width: tf.Tensor) -> tf.Tensor:
    """int32: the largest of 1, 2, 4 and 8 that a JPEG of this size can be decoded
    smaller by and still be no smaller than `shrink` makes it."""
    short = tf.cast(tf.minimum(height, width), tf.float32)
    long = tf.cast(tf.maximum(height, width), tf.float32)
    room = tf.maximum(short / SHORT_SIDE, long / LONG_SIDE)  # 1 / shrink's factor
    return tf.cast(
        tf.gather([1, 2, 4, 8], tf.reduce_sum(tf.cast(room >= [2.0, 4.0, 8.0], tf.int32))),
        tf.int32,
    )


def border(gray: tf.Tensor) -> tf.Tensor:
    """The pixels of the image's four edges."""
    return tf.concat([gray[0], gray[-1], gray[:, 0], gray[:, -1]], axis=0)


def median(values: tf.Tensor) -> tf.Tensor:
    """The value at index n // 2 of the sorted values, exactly. Sorting a whole image
    dominated the photo path's time, so the values are narrowed first: twice, a
    histogram of 256 bins between their least and greatest picks the bin that holds the
    index; only what is left is sorted (nothing, when it is all one value, as paper
    often is)."""
    values = tf.reshape(values, [-1])
    at = tf.size(values) // 2
    for _ in range(2):
        low = tf.reduce_min(values)
        scale = 256.0 / tf.maximum(tf.reduce_max(values) - low, 1e-30)
        bins = tf.clip_by_value(tf.floor((values - low) * scale), 0.0, 255.0)
        below = tf.cumsum(histogram(bins))
        bin_ = tf.reduce_sum(tf.cast(below <= at, tf.int32))  # the bin holding index `at`
        at -= tf.concat([[0], below], 0)[bin_]
        values = tf.boolean_mask(values, tf.equal(bins, tf.cast(bin_, tf.float32)))
    least = tf.reduce_min(values)
    return tf.cond(
        at < tf.reduce_sum(tf.cast(tf.equal(values, least), tf.int32)),
        lambda: least,
        lambda: tf.sort(values)[at],
    )


def histogram(bins: tf.Tensor) -> tf.Tensor:
    """int32 [256]: how many of `bins` (whole numbers 0..255, as floats) are each value.
    (tf.histogram_fixed_width is several times faster than tf.math.bincount here.)"""
    return tf.histogram_fixed_width(tf.reshape(bins, [-1]), [0.0, 256.0], nbins=256)


def on_the_paper(gray: tf.Tensor) -> tuple[tf.Tensor, tf.Tensor, tf.Tensor]:
    """(the image, [top, left] of what was cut off, the median of its border: the
    background `ink_up` compares with): the light sheet, when a photo shows
    one on a dark surround (a table all around it), cropped to the rows and columns that
    are mostly light, if those span at least half the image each way, leave dark on all
    four sides and are nearly all light (PAPER_SOLID). Else the image as it is: a light
    digit on a dark ground is strokes, never that solid, and uneven light is not dark all
    round."""
    threshold = otsu(gray, tf.maximum(tf.reduce_max(gray), 1.0))
    light = gray > threshold
    lit = tf.cast(light, tf.float32)
    h, w = tf.shape(gray, out_type=tf.int64)[0], tf.shape(gray, out_type=tf.int64)[1]
    top, bottom = _first_and_last(tf.reduce_mean(lit, axis=1) >= 0.5)
    left, right = _first_and_last(tf.reduce_mean(lit, axis=0) >= 0.5)
    tall, wide = bottom - top + 1, right - left + 1
    big = (2 * tall >= h) & (2 * wide >= w)
    inside = (top > 0) & (left > 0) & (bottom < h - 1) & (right < w - 1)  # dark all round
    surround = median(border(gray))
    is_sheet = tf.cond(
        big & inside & (surround < threshold),
        lambda: tf.reduce_mean(lit[top : bottom + 1, left : right + 1]) >= PAPER_SOLID,
        lambda: tf.constant(False),
    )
    crop = tf.where(is_sheet, tf.stack([top, left]), tf.zeros([2], tf.int64))

    def cut():
        sheet = gray[top : bottom + 1, left : right + 1]
        return sheet, median(border(sheet))

    sheet, background = tf.cond(is_sheet, cut, lambda: (gray, surround))
    return sheet, crop, background


def _first_and_last(flags: tf.Tensor) -> tuple[tf.Tensor, tf.Tensor]:
    """int64 first and last index where `flags` holds; (its length, -1) where none does."""
    first, end = span(flags)
    return tf.cast(first, tf.int64), tf.cast(end, tf.int64) - 1


def ink_up(gray: tf.Tensor, background: tf.Tensor) -> tf.Tensor:
    """Inverted when the background (its border's median, from `on_the_paper`) lies
    nearer the brightest pixel than the darkest: ink is then high, as in MNIST."""
    light = (tf.reduce_max(gray) - background) < (background - tf.reduce_min(gray))
    return tf.where(light, PIXEL_MAX - gray, gray)


def without_paper(x: tf.Tensor) -> tf.Tensor:
    """The paper's level removed. From images of at least 32 px a side a white top-hat
    (the image minus its grey opening by a window a quarter of the shorter side) also
    removes uneven paper, shadows and paper edges wider than strokes; smaller ones lose
    their border's median."""
    h, w = tf.shape(x)[0], tf.shape(x)[1]
    k = tf.maximum(3, (tf.minimum(h, w) // 4) // 2 * 2 + 1)
    return tf.cond(
        tf.maximum(h, w) < 32,
        lambda: tf.maximum(x - median(border(x)), 0.0),
        lambda: tf.maximum(x - max_filter(min_filter(x, k), k), 0.0),
    )


def otsu(x: tf.Tensor, top: tf.Tensor) -> tf.Tensor:
    """Otsu's threshold of the values of x over 256 bins spanning [0, top]."""
    bins = 256
    scaled = tf.clip_by_value(tf.floor(x / tf.maximum(top, 1e-6) * (bins - 1)), 0.0, bins - 1)
    hist = tf.cast(histogram(scaled), tf.float64)
    centres = tf.range(bins, dtype=tf.float64)
    w0 = tf.cumsum(hist)
    w1 = tf.reduce_sum(hist) - w0
    s0 = tf.cumsum(hist * centres)
    m0 = s0 / tf.maximum(w0, 1e-9)
    m1 = (tf.reduce_sum(hist * centres) - s0) / tf.maximum(w1, 1e-9)
    best = tf.cast(tf.argmax(w0 * w1 * (m0 - m1) ** 2), tf.float32)
    return (best + 0.5) / (bins - 1) * top


def ink_level(x: tf.Tensor, ink: tf.Tensor) -> tf.Tensor:
    """The ink's median grey level; without ink, the brightest pixel (at least 1)."""
    return tf.cond(
        tf.reduce_any(ink),
        lambda: median(tf.boolean_mask(x, ink)),
        lambda: tf.maximum(tf.reduce_max(x), 1.0),
    )


def stands_out(x: tf.Tensor, ink: tf.Tensor, level: tf.Tensor) -> tf.Tensor:
    """bool: the ink's `level` (its median) lies at least MIN_CONTRAST grey levels, and
    NOISE_RATIO times the paper's noise (1.4826 MAD), above the paper's median. Otsu
    splits even a blank page's noise in two; this tells a digit from that."""

    def above_noise(gap, noise):
        return gap >= NOISE_RATIO * (noise + 1.0)

    def measure():
        paper = tf.boolean_mask(x, tf.logical_not(ink))
        some = tf.size(paper) > 0
        paper_level = tf.cond(some, lambda: median(paper), lambda: 0.0)
        gap = level - paper_level
        # Whether the noise's median is low enough, without finding it: the test is
        # monotonic in the noise, so the median passes exactly when over half pass.
        passing = above_noise(gap, 1.4826 * tf.abs(paper - paper_level))
        quiet = tf.cond(
            some,
            lambda: tf.reduce_sum(tf.cast(passing, tf.int32)) > tf.size(paper) // 2,
            lambda: above_noise(gap, 0.0),
        )
        return tf.logical_and(gap >= MIN_CONTRAST, quiet)

    return tf.cond(tf.reduce_any(ink), measure, lambda: tf.constant(False))


def stretched(x: tf.Tensor, level: tf.Tensor, threshold: tf.Tensor) -> tf.Tensor:
    """Contrast stretched as MNIST's: the ink's `level` to 255 (in MNIST most ink pixels
    are saturated), half the threshold and below to 0 (paper noise), linear between."""
    low = 0.5 * threshold
    return tf.clip_by_value((x - low) / tf.maximum(level - low, 1e-3), 0.0, 1.0) * PIXEL_MAX


def stroke_width(work: tf.Tensor) -> tf.Tensor:
    """2 * area / perimeter of the ink (above mid-grey) of a square image: a stroke of
    width w and length L has area w L and a perimeter of about 2 L."""
    ink = tf.cast(work > PIXEL_MAX / 2, tf.float32)
    inner = erode3(ink)
    return 2.0 * tf.reduce_sum(ink) / tf.maximum(tf.reduce_sum(ink - inner), 1.0)
