"""Rows of writing made the finder's input, in TensorFlow ops, a batch at a time: the same
function for the reader's pages and for the rows training draws, so both are made alike.

Each image's ink is cropped to its box, every run of empty columns longer than GAP of the
ink's height is shortened to that (far-apart groups come closer, so the row stays short
and a wide gap still reads as one), and the whole is scaled, keeping its aspect, so that
the ink is `ink_height` px tall (20 for the finder, as MNIST's digits are 20 px in 28),
centred in a row ROW_HEIGHT - INK_HEIGHT px taller, MARGIN px from its left edge (less
tall where it would not fit the width). `RowMap` says where each column of a row came
from, so what is found on the row goes back to the page, and where the page's columns
went, so where training drew a digit is known on its row.
"""

from __future__ import annotations

from typing import NamedTuple

import tensorflow as tf

from relunet.imaging.measure import span

ROW_HEIGHT = 28  # the finder's rows: MNIST's height ...
INK_HEIGHT = 20  # ... with the ink as tall as an MNIST digit's box
MARGIN = 8  # px of empty row before the ink (and at least after it)
GAP = 0.3  # empty column runs longer than this share of the ink's height are shortened
INK = 0.15  # a pixel at least this dark (of 1) is ink, for boxes and gaps
SHARPEST = 0.5  # rows are sampled bilinearly at no less than this scale; pages are
# first shrunk (antialiased) to the largest size that leaves that, so none aliases


class RowMap(NamedTuple):
    """Where rows' columns came from: row column x is the page column `columns[(x -
    MARGIN) / scale]` (interpolated; float [b, w] the page columns kept, left to right,
    the last repeated past `kept` [b]); `scale` [b] is row px per column kept and
    `factor` [b] columns kept per page px (under 1 where a page was shrunk first); the
    ink's top is page row `top` [b] and row row `offset` [b]."""

    columns: tf.Tensor
    kept: tf.Tensor
    top: tf.Tensor
    offset: tf.Tensor
    scale: tf.Tensor
    factor: tf.Tensor

    def page_columns(self, x: tf.Tensor) -> tf.Tensor:
        """Page columns (float [b, k]) of row columns x [b, k]."""
        last = tf.cast(self.kept - 1, tf.float32)[:, None]
        at = tf.clip_by_value((x - MARGIN) / self.scale[:, None], 0.0, last)
        low = tf.cast(tf.floor(at), tf.int32)
        high = tf.minimum(low + 1, self.kept[:, None] - 1)
        part = at - tf.floor(at)
        first = tf.gather(self.columns, low, batch_dims=1)
        return first + part * (tf.gather(self.columns, high, batch_dims=1) - first)

    def row_columns(self, page_x: tf.Tensor) -> tf.Tensor:
        """Row columns (float [b, k]) of page columns page_x [b, k] (a column in a
        shortened run of empty ones goes to where the run was cut)."""
        at = tf.searchsorted(self.columns, page_x, side="right") - 1
        at = tf.clip_by_value(at, 0, self.kept[:, None] - 1)
        before = tf.gather(self.columns, at, batch_dims=1)
        within = tf.clip_by_value((page_x - before) * self.factor[:, None], 0.0, 1.0)
        return MARGIN + (tf.cast(at, tf.float32) + within) * self.scale[:, None]


def row_images(
    ink: tf.Tensor, ink_height: int = INK_HEIGHT, width: int | None = None
) -> tuple[tf.Tensor, RowMap]:
    """(rows float [b, ink_height + 8, width], their RowMap) of pages of ink [b, h, w] in
    0..1, each holding some ink. Without `width`, as wide as the widest row needs (at
    least ROW_HEIGHT); a row that would be wider is scaled down to fit."""
    ink, factor = _sharp_enough(ink, ink_height)
    compressed, columns, kept, top, bottom = _without_long_gaps(ink)
    # A page one pixel wide or tall (a stroke 40 times taller than wide, shrunk) gets a
    # second, empty one: crop_and_resize's boxes are in units of its size less one.
    short = tf.maximum(2 - tf.shape(compressed)[1:], 0)
    compressed = tf.pad(compressed, [[0, 0], [0, short[0]], [0, short[1]]])
    height = tf.cast(bottom - top, tf.float32)
    scale = ink_height / height
    rows = ink_height + ROW_HEIGHT - INK_HEIGHT
    if width is None:
        needed = tf.cast(kept, tf.float32) * scale + 2 * MARGIN
        width = tf.maximum(ROW_HEIGHT, tf.cast(tf.math.ceil(tf.reduce_max(needed)), tf.int32))
    else:
        scale = tf.minimum(scale, (width - 2 * MARGIN) / tf.cast(kept, tf.float32))
    offset = (rows - height * scale) / 2
    # Row pixel (y, x) samples page pixel (top + (y - offset) / scale, (x - MARGIN) / scale).
    h, w = (
        tf.cast(tf.shape(compressed)[1] - 1, tf.float32),
        tf.cast(tf.shape(compressed)[2] - 1, tf.float32),
    )
    y0 = tf.cast(top, tf.float32) - offset / scale
    x0 = -MARGIN / scale
    boxes = tf.stack(
        [
            y0 / h,
            x0 / w,
            (y0 + (rows - 1) / scale) / h,
            (x0 + (tf.cast(width, tf.float32) - 1) / scale) / w,
        ],
        1,
    )
    images = tf.image.crop_and_resize(
        compressed[..., None],
        boxes,
        tf.range(tf.shape(ink)[0]),
        tf.stack([rows, width]),
        extrapolation_value=0.0,
    )[..., 0]
    mapping = RowMap(
        columns=(columns + 0.5) / factor[:, None] - 0.5,  # pixel centres, as resize aligns
        kept=kept,
        top=tf.cast(top, tf.float32) / factor,
        offset=offset,
        scale=scale,
        factor=factor,
    )
    return tf.clip_by_value(images, 0.0, 1.0), mapping


def _sharp_enough(ink: tf.Tensor, ink_height: int) -> tuple[tf.Tensor, tf.Tensor]:
    """(pages, the factor they were shrunk by [b]): shrunk together, antialiased, when
    even the shortest ink is over 1 / SHARPEST times `ink_height` tall (a photo's page),
    so that sampling never skips pixels; training's rows, drawn near the size, are not."""
    top, bottom = span(tf.reduce_any(ink > INK, 2))
    tallest = tf.cast(tf.reduce_min(bottom - top), tf.float32)
    factor = tf.minimum(1.0, ink_height / (SHARPEST * tf.maximum(tallest, 1.0)))
    size = tf.maximum(
        1, tf.cast(tf.round(tf.cast(tf.shape(ink)[1:], tf.float32) * factor), tf.int32)
    )
    shrunk = tf.cond(
        factor < 1.0,
        lambda: tf.image.resize(ink[..., None], size, antialias=True)[..., 0],
        lambda: ink,
    )
    return shrunk, tf.fill(
        [tf.shape(ink)[0]],
        tf.cast(tf.shape(shrunk)[1], tf.float32) / tf.cast(tf.shape(ink)[1], tf.float32),
    )


def _without_long_gaps(ink: tf.Tensor):
    """(pages [b, h, w] with each ink's columns first, shortened runs of empty columns
    dropped, zeros after; the page column of each [b, w]; how many [b]; the ink's top and
    bottom rows [b])."""
    w = tf.shape(ink)[2]
    inked = ink > INK
    top, bottom = span(tf.reduce_any(inked, 2))
    columns = tf.reduce_any(inked, 1)  # [b, w]
    left, right = span(columns)
    index = tf.range(w)[None, :]
    last_ink = _running_max(tf.where(columns, index, -1))
    gap = tf.maximum(1.0, tf.round(GAP * tf.cast(bottom - top, tf.float32)))
    keep = columns | ((last_ink >= 0) & (tf.cast(index - last_ink, tf.float32) <= gap[:, None]))
    keep &= (index >= left[:, None]) & (index < right[:, None])
    order = tf.argsort(tf.where(keep, index, w + index), axis=1, stable=True)
    kept = tf.reduce_sum(tf.cast(keep, tf.int32), 1)
    moved = tf.gather(ink, order, axis=2, batch_dims=1)
    moved = tf.where((index < kept[:, None])[:, None, :], moved, 0.0)
    last = tf.gather(order, tf.maximum(kept - 1, 0)[:, None], batch_dims=1)
    columns = tf.cast(tf.where(index < kept[:, None], order, last), tf.float32)
    return moved, columns, kept, top, bottom


def _running_max(values: tf.Tensor) -> tf.Tensor:
    """int [b, n]: the largest of values[:, : i + 1] at each i, by doubling (log2 n steps)."""
    n = tf.shape(values)[1]

    def double(v, shift):
        shifted = tf.pad(v, [[0, 0], [shift, 0]], constant_values=-1)[:, :n]
        return tf.maximum(v, shifted), shift * 2

    values, _ = tf.while_loop(
        lambda v, shift: shift < n,
        double,
        (values, tf.constant(1)),
        shape_invariants=(tf.TensorShape([None, None]), tf.TensorShape([])),
    )
    return values
