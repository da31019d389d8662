"""The steps that find a digit's ink on real paper, in TensorFlow ops (relunet.reading.digits
strings them together). Each takes and gives grey images [h, w] of any size, floats in
0..255, and runs inside one traced function.
"""

from __future__ import annotations

import tensorflow as tf

from relunet.base.mnist import PIXEL_MAX

LUMA = (0.2989, 0.5870, 0.1140)  # ITU-R 601, as tf.image.rgb_to_grayscale
# Larger images are first scaled down, to at most SHORT_SIDE px on their shorter side and
# LONG_SIDE on their longer: a digit ends up 20 px tall anyway, and a row of six digits
# written across a page keeps each about 100 px wide.
SHORT_SIDE = 160
LONG_SIDE = 640
MIN_CONTRAST = 24.0  # grey levels between paper and ink below which there is no digit
NOISE_RATIO = 6.0  # ... or fewer than this many times the paper's own noise
SPECK = 0.1  # a component under this fraction of the heaviest one's mass is a speck
MARK = 0.01  # ... unless it is enclosed by what is kept (a face's eyes) and this heavy
JUMPS = 3  # label jumps per pass of the component labelling (see _labelled)
MASK_SIDE = 64  # components are found on a mask of at most this many px on its short side
PAPER_SOLID = 0.85  # a sheet on a dark surround: this share of its pixels is light
RULED_SPAN = 0.9  # a component at least this share of the image's width ...
RULED_FLAT = 8.0  # ... and at least this many times wider than tall is a ruled line


def grayscale(image: tf.Tensor) -> tf.Tensor:
    """[h, w] in 0..255 from [h, w, 1..4] channels, transparency composited over white."""
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
    return gray * alpha + PIXEL_MAX * (1.0 - alpha)


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


def on_the_paper(gray: tf.Tensor) -> tuple[tf.Tensor, tf.Tensor]:
    """(the image, [top, left] of what was cut off): the light sheet, when a photo shows
    one on a dark surround (a table all around it), cropped to the rows and columns that
    are mostly light, if those span at least half the image each way, leave dark on all
    four sides and are nearly all light (PAPER_SOLID). Else the image as it is: a light
    digit on a dark ground is strokes, never that solid, and uneven light is not dark all
    round."""
    threshold = otsu(gray, tf.maximum(tf.reduce_max(gray), 1.0))
    light = gray > threshold
    lit = tf.cast(light, tf.float32)
    h, w = tf.shape(gray, out_type=tf.int64)[0], tf.shape(gray, out_type=tf.int64)[1]
    top, bottom = _first_and_last(tf.reduce_mean(lit, axis=1) >= 0.5, h)
    left, right = _first_and_last(tf.reduce_mean(lit, axis=0) >= 0.5, w)
    tall, wide = bottom - top + 1, right - left + 1
    big = (2 * tall >= h) & (2 * wide >= w)
    inside = (top > 0) & (left > 0) & (bottom < h - 1) & (right < w - 1)  # dark all round
    surround_dark = median(border(gray)) < threshold
    is_sheet = tf.cond(
        big & inside & surround_dark,
        lambda: tf.reduce_mean(lit[top : bottom + 1, left : right + 1]) >= PAPER_SOLID,
        lambda: tf.constant(False),
    )
    crop = tf.where(is_sheet, tf.stack([top, left]), tf.zeros([2], tf.int64))
    sheet = tf.cond(is_sheet, lambda: gray[top : bottom + 1, left : right + 1], lambda: gray)
    return sheet, crop


def _first_and_last(flags: tf.Tensor, size: tf.Tensor) -> tuple[tf.Tensor, tf.Tensor]:
    """The first and last index where `flags` holds; (size, -1) where it never does."""
    where = tf.where(flags)[:, 0]
    return (
        tf.reduce_min(tf.concat([where, [size]], 0)),
        tf.reduce_max(tf.concat([where, [-1]], 0)),
    )


def ink_up(gray: tf.Tensor) -> tf.Tensor:
    """Inverted when the background (the border's median) lies nearer the brightest pixel
    than the darkest: ink is then high, as in MNIST."""
    background = median(border(gray))
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


def without_specks(x: tf.Tensor, ink: tf.Tensor) -> tuple[tf.Tensor, tf.Tensor, tf.Tensor]:
    """(x, ink, component ids) with only the ink worth keeping, by 8-connected components
    of the ink on a mask of at most MASK_SIDE px on its shorter side: specks and paper
    edges neither set a digit's box nor reach the model (see `_kept_components`). The
    ids [h, w] (int32, 0 where no ink is kept) say which component each ink pixel is
    part of: relunet.reading.segment groups them into digits."""
    h, w = tf.shape(ink)[0], tf.shape(ink)[1]
    f = tf.maximum(1, (tf.minimum(h, w) + MASK_SIDE - 1) // MASK_SIDE)
    hh, ww = (h + f - 1) // f, (w + f - 1) // f
    pad = [[0, hh * f - h], [0, ww * f - w]]

    def blocks(a):
        return tf.reshape(tf.pad(a, pad), [hh, f, ww, f])

    small_ink = tf.reduce_any(blocks(ink), axis=[1, 3])
    small_mass = tf.reduce_sum(blocks(x), axis=[1, 3])
    edge_run = tf.where(tf.maximum(h, w) < 32, 2.0, 0.5)  # small images: no paper edges
    kept, ids = _kept_components(small_ink, small_mass, edge_run)

    def full_size(a):  # each block's value in each of its pixels
        spread = tf.broadcast_to(a[:, None, :, None], [hh, f, ww, f])
        return tf.reshape(spread, [hh * f, ww * f])[:h, :w]

    kept, ids = full_size(kept), full_size(ids)
    # Keep a pixel of fringe around what is kept (antialiased stroke edges).
    near = max3(tf.cast(kept, tf.float32))
    ink = tf.logical_and(ink, kept)
    return tf.where(near > 0, x, 0.0), ink, tf.where(ink, ids, 0)


def _kept_components(
    mask: tf.Tensor, weight: tf.Tensor, edge_run: tf.Tensor
) -> tuple[tf.Tensor, tf.Tensor]:
    """(bool [h, w], int32 [h, w] ids): the components of `mask` worth keeping, and each
    pixel's component (its label). One lying along the image's
    edge (touching a side over at least `edge_run` of its length: a paper edge, the table
    beyond it, a ruled margin) goes when another carries 5% of the heaviest one's weight
    (a tightly cropped digit touches the edges too, and is then kept); of the rest, those
    under SPECK of the heaviest are specks, unless enclosed by the ink kept (ink to their
    left, right, above and below: the eyes of a face are part of it). A ruled line
    (RULED_SPAN, RULED_FLAT) always goes. Labels spread by 3x3 max pooling of pixel
    indices until nothing changes."""
    h, w = tf.shape(mask)[0], tf.shape(mask)[1]
    m = tf.cast(mask, tf.float32)
    ids = _labelled(m)
    n = h * w + 1
    real = tf.range(n) > 0  # label 0 is the background

    def per_label(values, where):
        return tf.math.unsorted_segment_sum(tf.reshape(values, [-1]), tf.reshape(where, [-1]), n)

    mass = tf.where(real, per_label(weight * m, ids), 0.0)
    run = tf.zeros([n])
    for side, length in ((ids[0], w), (ids[-1], w), (ids[:, 0], h), (ids[:, -1], h)):
        share = per_label(tf.ones_like(side, tf.float32), side) / tf.cast(length, tf.float32)
        run = tf.maximum(run, share)
    edge = tf.logical_and(real, run >= edge_run)
    # A ruled line: nearly as wide as the image and flat; never a digit, even alone.
    rows = tf.cast(tf.reshape(tf.tile(tf.range(h)[:, None], [1, w]), [-1]), tf.float32)
    cols = tf.cast(tf.reshape(tf.tile(tf.range(w)[None, :], [h, 1]), [-1]), tf.float32)
    flat_ids = tf.reshape(ids, [-1])

    def span(position):
        high = tf.math.unsorted_segment_max(position, flat_ids, n)
        low = -tf.math.unsorted_segment_max(-position, flat_ids, n)
        return tf.maximum(high - low + 1.0, 0.0)

    width, height = span(cols), span(rows)
    ruled = (width >= RULED_SPAN * tf.cast(w, tf.float32)) & (height * RULED_FLAT <= width)
    real = tf.logical_and(real, tf.logical_not(tf.logical_and(ruled, w >= 32)))
    heaviest = tf.reduce_max(mass)
    drop_edges = tf.reduce_max(tf.where(edge, 0.0, mass)) >= 0.05 * heaviest
    candidate = tf.logical_and(real, tf.logical_not(tf.logical_and(edge, drop_edges)))
    top = tf.reduce_max(tf.where(candidate, mass, 0.0))
    keep = candidate & (mass >= SPECK * top) & (mass > 0)
    enclosed = per_label(tf.cast(_enclosed(tf.gather(keep, ids)), tf.float32), ids) > 0
    keep |= candidate & enclosed & (mass >= MARK * top)
    return tf.logical_and(tf.gather(keep, ids), mask), ids


def _enclosed(kept: tf.Tensor) -> tf.Tensor:
    """bool [h, w]: pixels with kept ink somewhere to their left, right, above and below."""
    k = tf.cast(kept, tf.float32)
    sides = [
        tf.math.cumsum(k, axis, exclusive=True, reverse=reverse) > 0
        for axis in (0, 1)
        for reverse in (False, True)
    ]
    return tf.reduce_all(tf.stack(sides), 0)


def _labelled(m: tf.Tensor) -> tf.Tensor:
    """int32 [h, w]: each pixel of the 0/1 mask `m` labelled with the largest 1-based index
    of a pixel of its 8-connected component (0 off the mask). Each pass spreads labels to
    neighbours (3x3 max pooling), then jumps: a pixel takes the label of the pixel its
    label names (in its own component, and at least as large), JUMPS times, which
    shortens long chains exponentially instead of a pixel per pass."""
    h, w = tf.shape(m)[0], tf.shape(m)[1]
    labels = (tf.cast(tf.range(h * w), tf.float32) + 1.0) * tf.reshape(m, [-1])

    def spread(labels, changed):
        flat = tf.reshape(max3(tf.reshape(labels, [h, w])), [-1]) * tf.reshape(m, [-1])
        for _ in range(JUMPS):
            named = tf.gather(flat, tf.maximum(tf.cast(flat, tf.int32) - 1, 0))
            flat = tf.where(flat > 0, tf.maximum(flat, named), 0.0)
        return flat, tf.reduce_any(flat != labels)

    labels, _ = tf.while_loop(
        lambda labels, changed: changed,
        spread,
        (labels, tf.constant(True)),
        maximum_iterations=h * w,
    )
    return tf.reshape(tf.cast(labels, tf.int32), [h, w])


def stroke_width(work: tf.Tensor) -> tf.Tensor:
    """2 * area / perimeter of the ink (above mid-grey) of a square image: a stroke of
    width w and length L has area w L and a perimeter of about 2 L."""
    ink = tf.cast(work > PIXEL_MAX / 2, tf.float32)
    inner = -max3(-ink)
    return 2.0 * tf.reduce_sum(ink) / tf.maximum(tf.reduce_sum(ink - inner), 1.0)


def max3(x: tf.Tensor) -> tf.Tensor:
    """Grey dilation of [h, w] by a 3x3 square, same size (3x3 max pooling), in slices:
    tf.nn.max_pool2d is several times slower on a single channel."""
    edged = tf.pad(x, [[1, 1], [1, 1]], "SYMMETRIC")  # an edge's copy never wins
    rows = tf.maximum(tf.maximum(edged[:-2], edged[1:-1]), edged[2:])
    return tf.maximum(tf.maximum(rows[:, :-2], rows[:, 1:-1]), rows[:, 2:])


def max_filter(x: tf.Tensor, k: tf.Tensor) -> tf.Tensor:
    """Grey dilation of [h, w] by a k x k square (k odd, a tensor), same size: separable,
    each direction a windowed max built by doubling (log2 k steps, not k)."""
    return _directional_max(_directional_max(x, k, axis=0), k, axis=1)


def min_filter(x: tf.Tensor, k: tf.Tensor) -> tf.Tensor:
    """Grey erosion by a k x k square."""
    return -max_filter(-x, k)


def _directional_max(x: tf.Tensor, k: tf.Tensor, axis: int) -> tf.Tensor:
    """Max over a centred window of length k (odd) along `axis` (0 or 1); padding never
    wins."""
    n = tf.shape(x)[axis]
    half = [k // 2, k // 2]
    m = tf.pad(x, [half, [0, 0]] if axis == 0 else [[0, 0], half], constant_values=-1e9)

    def take(m, start, length):
        return m[start : start + length] if axis == 0 else m[:, start : start + length]

    def double(m, span):  # m[i] = max(padded[i : i + span]) -> the same for 2 span
        rest = tf.shape(m)[axis] - span  # the last span - 1 would reach past the end
        return tf.maximum(take(m, 0, rest), take(m, span, rest)), span * 2

    m, span = tf.while_loop(
        lambda m, span: span * 2 <= k,
        double,
        (m, tf.constant(1)),
        shape_invariants=(tf.TensorShape([None, None]), tf.TensorShape([])),
    )
    # A window of k is two overlapping windows of span (span <= k < 2 span).
    return tf.maximum(take(m, 0, n), take(m, k - span, n))
