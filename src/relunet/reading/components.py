"""The ink's connected components, in TensorFlow ops: which are worth keeping (digits,
their parts, a face's eyes) and which are not (specks, paper edges, ruled lines). The
kept ink is what the reader makes a row of writing of (relunet.reading.digits)."""

from __future__ import annotations

import tensorflow as tf

from relunet.imaging.measure import label, span
from relunet.imaging.morphology import dilate3, level_runs

SPECK = 0.1  # a component under this fraction of the heaviest one's mass is a speck
MARK = 0.01  # ... unless it is enclosed by what is kept (a face's eyes) and this heavy,
DOT = 0.01  # ... or between what is kept (a decimal point: the finder says what it is)
LINE = 0.8  # ink running level across this share of the page's width is a ruled line
MASK_SIDE = 64  # components are found on a mask of at most this many px on its short side
RULED_SPAN = 0.9  # a component at least this share of the mask's width ...
RULED_FLAT = 8.0  # ... and at least this many times wider than tall is a ruled line
RULED_MASK = 32  # ... in a mask at least this many px wide (narrower: perhaps a stroke)
EDGE_RUN = 0.5  # a component along this share of a side is a paper edge ...
SMALL_IMAGE = 32  # ... in an image of this many px a side or more (smaller: a tight crop)
EDGE_KEPT = 0.05  # ... and goes when another carries this share of the heaviest's mass


def without_specks(x: tf.Tensor, ink: tf.Tensor) -> tuple[tf.Tensor, tf.Tensor, tf.Tensor]:
    """(x, ink, component ids) with only the ink worth keeping, by 8-connected components
    of the ink on a mask of at most MASK_SIDE px on its shorter side: specks and paper
    edges neither set a digit's box nor reach the model (see `_kept_components`). The
    ids [h, w] (int32, 0 where no ink is kept) say which component each ink pixel is
    part of. Ruled lines are taken out first, pixel by pixel (`without_lines`), so that
    digits written across one are kept, and the line is not."""
    x, ink = without_lines(x, ink)
    h, w = tf.shape(ink)[0], tf.shape(ink)[1]
    f = tf.maximum(1, (tf.minimum(h, w) + MASK_SIDE - 1) // MASK_SIDE)
    hh, ww = (h + f - 1) // f, (w + f - 1) // f
    pad = [[0, hh * f - h], [0, ww * f - w]]

    def blocks(a):
        return tf.reshape(tf.pad(a, pad), [hh, f, ww, f])

    small_ink = tf.reduce_any(blocks(ink), axis=[1, 3])
    small_mass = tf.reduce_sum(blocks(x), axis=[1, 3])
    # A small image has no paper edges: no run along a side is twice the side.
    edge_run = tf.where(tf.maximum(h, w) < SMALL_IMAGE, 2.0, EDGE_RUN)
    kept, ids = _kept_components(small_ink, small_mass, edge_run)

    def full_size(a):  # each block's value in each of its pixels
        spread = tf.broadcast_to(a[:, None, :, None], [hh, f, ww, f])
        return tf.reshape(spread, [hh * f, ww * f])[:h, :w]

    kept, ids = full_size(kept), full_size(ids)
    # Keep a pixel of fringe around what is kept (antialiased stroke edges).
    near = dilate3(tf.cast(kept, tf.float32))
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
    ids = label(m)
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

    def extent(position):
        high = tf.math.unsorted_segment_max(position, flat_ids, n)
        low = -tf.math.unsorted_segment_max(-position, flat_ids, n)
        return tf.maximum(high - low + 1.0, 0.0)

    width, height = extent(cols), extent(rows)
    ruled = (width >= RULED_SPAN * tf.cast(w, tf.float32)) & (height * RULED_FLAT <= width)
    real = tf.logical_and(real, tf.logical_not(tf.logical_and(ruled, w >= RULED_MASK)))
    heaviest = tf.reduce_max(mass)
    drop_edges = tf.reduce_max(tf.where(edge, 0.0, mass)) >= EDGE_KEPT * heaviest
    candidate = tf.logical_and(real, tf.logical_not(tf.logical_and(edge, drop_edges)))
    top = tf.reduce_max(tf.where(candidate, mass, 0.0))
    keep = candidate & (mass >= SPECK * top) & (mass > 0)
    enclosed = per_label(tf.cast(_enclosed(tf.gather(keep, ids)), tf.float32), ids) > 0
    keep |= candidate & enclosed & (mass >= MARK * top)
    keep |= (
        candidate
        & (per_label(tf.cast(_between(tf.gather(keep, ids)), tf.float32), ids) > 0)
        & (mass >= DOT * top)
    )
    return tf.logical_and(tf.gather(keep, ids), mask), ids


def without_lines(x: tf.Tensor, ink: tf.Tensor) -> tuple[tf.Tensor, tf.Tensor]:
    """(x, ink) without the ink of ruled lines: the pixels of level runs of ink at least
    LINE of the page wide (a grey opening along rows), and their antialiased edges just
    above and below. Where a digit crosses a line its stroke is cut by the line's width,
    which the finder and the cut treat as a broken stroke. A page none of whose rows
    holds more than half that much ink has none (the opening's window, clipped at the
    page's sides, holds at least half of it and one more), and is left as it is."""
    width = tf.shape(ink)[1]
    length = tf.cast(tf.math.ceil(LINE * tf.cast(width, tf.float32)), tf.int32) // 2 * 2 + 1

    def cut():
        lines = level_runs(ink, length)
        edges = tf.concat([lines[1:], tf.zeros_like(lines[:1])], 0) | tf.concat(
            [tf.zeros_like(lines[:1]), lines[:-1]], 0
        )
        return tf.where(lines | edges, 0.0, x), ink & tf.logical_not(lines)

    most = tf.reduce_max(tf.reduce_sum(tf.cast(ink, tf.int32), 1))
    return tf.cond((width >= RULED_MASK) & (most > length // 2), cut, lambda: (x, ink))


def _between(kept: tf.Tensor) -> tf.Tensor:
    """bool [h, w]: pixels in the rows the kept ink spans, with kept ink to their left
    and right: where a number's decimal point (or a minus sign's dash) is written."""
    rows = tf.reduce_any(kept, 1)
    top, bottom = span(rows)
    inside = (tf.range(tf.shape(kept)[0]) >= top) & (tf.range(tf.shape(kept)[0]) < bottom)
    columns = tf.reduce_any(kept, 0)
    left, right = span(columns)
    across = (tf.range(tf.shape(kept)[1]) >= left) & (tf.range(tf.shape(kept)[1]) < right)
    return inside[:, None] & across[None, :]


def _enclosed(kept: tf.Tensor) -> tf.Tensor:
    """bool [h, w]: pixels with kept ink somewhere to their left, right, above and below."""
    k = tf.cast(kept, tf.float32)
    sides = [
        tf.math.cumsum(k, axis, exclusive=True, reverse=reverse) > 0
        for axis in (0, 1)
        for reverse in (False, True)
    ]
    return tf.reduce_all(tf.stack(sides), 0)
