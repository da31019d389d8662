"""Rows of writing drawn from MNIST's training digits, in TensorFlow ops, a batch at a
time: what the finder (relunet.training.finder) learns where digits are from.

A row holds one to MAX_ITEMS items, left to right: digits, each its own size, baseline,
slant and stroke width, at gaps drawn per row from overlapping boxes through touching to
wide (SPACINGS); now and then a letter or symbol (relunet.data.glyphs) among them, a
decimal point between two digits, a minus sign before the first; some rows are no
number at all (one to three letters, symbols or pen-stroke shapes, a lone one perhaps
stretched wide, as a wave or a scribble is); some have strokes broken where a photo's
threshold would break them, and specks of dirt that are nothing. Each row is made the
finder's input by relunet.imaging.rows.row_images, the very function the reader uses on
a page, and comes with each item's kind (its digit, OTHER, POINT or MINUS) and its
centre in the row's columns.

Every draw is a stateless op of the batch's key (relunet.data.augment.batch_key of the
run's seed, epoch and step): a run is reproducible and resumes exactly.
"""

from __future__ import annotations

from typing import NamedTuple

import tensorflow as tf

from relunet.base.mnist import DIGIT, MINUS, NOTHING, OTHER, PIXEL_MAX, POINT
from relunet.data import blemishes, glyphs
from relunet.data.augment import batch_key
from relunet.data.strokes import strokes
from relunet.imaging.measure import span
from relunet.imaging.morphology import dilate3, erode3
from relunet.imaging.rows import INK, row_images

MAX_ITEMS = 8
ITEMS = (0.22, 0.22, 0.18, 0.14, 0.1, 0.06, 0.05, 0.03)  # how often a row has 1 .. 8 items
# Gaps between neighbours' ink, as shares of the row's digit height, a spacing per row.
SPACINGS = {
    "overlapping": (0.2, (-0.35, -0.05)),  # boxes overlap, ink may cross
    "touching": (0.3, (-0.12, 0.03)),
    "close": (0.25, (0.0, 0.15)),
    "apart": (0.17, (0.1, 0.5)),
    "wide": (0.08, (0.4, 0.9)),
}
HEIGHT = (17.0, 23.0)  # px: the row's digit height on the canvas
SIZE = (0.85, 1.15)  # each item's height, as a share of the row's
SLANT = 0.25  # the row's largest slant (a shear), and ...
ITEM_SLANT = 0.08  # ... each item's own, around it
BASELINE = 0.04  # each item's baseline moves by this share of the height (a normal's sd)
THICKNESS = (-0.6, 0.9)  # blend toward a 3x3 erosion (below 0) or dilation (above)
GLYPH = 0.08  # an item is a letter or symbol this often
NOT_A_NUMBER = 0.15  # a row is one to three letters, symbols or shapes this often
STRETCH = (1.0, 3.0)  # a lone one stretched this many times wider, half the time
POINTED = 0.15  # a row of digits holds a decimal point this often, ...
NEGATIVE = 0.12  # ... a minus sign before it this often (0.08 and 0.06 until stop 47)
CANVAS = (36, 336)  # px: where a row is drawn before it is made the finder's row


class Rows(NamedTuple):
    """A batch of rows: images float [b, 28, width] in 0..1; each item's kind int32 [b,
    MAX_ITEMS] (DIGIT, OTHER, POINT or MINUS of relunet.base.mnist; NOTHING past the row's
    items), its digit's class [b, MAX_ITEMS] (-1 for anything else), and its centre float
    [b, MAX_ITEMS] in the row's columns."""

    images: tf.Tensor
    kinds: tf.Tensor
    labels: tf.Tensor
    centres: tf.Tensor


def draw_rows(
    key: tf.Tensor,
    digits: tf.Tensor,
    labels: tf.Tensor,
    shapes: tf.Tensor,
    count: int,
    width: int,
) -> Rows:
    """`count` rows `width` px wide of MNIST digits uint8 [n, 28, 28, 1] with their labels
    [n], and of `shapes` float [g, 28, 28] (letters, symbols and pen strokes on the glyph
    frame, relunet.data.glyphs) for what is not a digit; without `shapes`, rows of digits
    (numbers, their points and signs) alone."""
    keys = iter(tf.unstack(tf.random.experimental.stateless_split(key, num=24)))
    items, kinds, labels, used = _drawn_items(keys, digits, labels, shapes, count)
    canvas, centres = _placed(keys, items, kinds, used)
    canvas = blemishes.broken(next(keys), canvas)
    canvas = tf.maximum(canvas, blemishes.specks(next(keys), canvas))

    images, mapping = row_images(canvas, width=width)
    centres = mapping.row_columns(centres)
    kinds = tf.where(used, kinds, NOTHING)
    return Rows(images, kinds, tf.where(tf.equal(kinds, DIGIT), labels, -1), centres)


def _drawn_items(keys, digits, labels, shapes, count):
    """(float [count, MAX_ITEMS, 28, 28] each slot's item, int32 kinds, int32 digit
    classes, bool used)."""
    b, n = count, MAX_ITEMS
    many = (
        tf.random.stateless_categorical(tf.math.log([ITEMS]), b, next(keys), dtype=tf.int32)[0] + 1
    )
    not_a_number = tf.random.stateless_uniform([b], next(keys)) < NOT_A_NUMBER
    if shapes is None:  # digits alone
        shapes, not_a_number = tf.zeros([1, 28, 28]), tf.zeros([b], tf.bool)
    many = tf.where(not_a_number, 1 + many % 3, many)
    slot = tf.range(n)[None, :]
    used = slot < many[:, None]
    pick = tf.random.stateless_uniform([b, n], next(keys), 0, tf.shape(digits)[0], dtype=tf.int32)
    item = tf.cast(tf.gather(digits[..., 0], pick), tf.float32) / PIXEL_MAX
    label = tf.cast(tf.gather(labels, pick), tf.int32)
    kind = tf.fill([b, n], DIGIT)
    share = GLYPH if shapes.shape[0] != 1 else 0.0
    glyph = (tf.random.stateless_uniform([b, n], next(keys)) < share) | not_a_number[:, None]
    chosen = tf.random.stateless_uniform([b, n], next(keys), 0, tf.shape(shapes)[0], dtype=tf.int32)
    item = tf.where(glyph[..., None, None], tf.gather(shapes, chosen), item)
    kind = tf.where(glyph, OTHER, kind)
    # a decimal point between two digits, a minus sign before the first
    marks, is_point = glyphs.points_and_dashes(next(keys), b)
    numbers = tf.logical_not(not_a_number) & (many >= 2)
    room = tf.cast(tf.maximum(many - 1, 1), tf.float32)  # the gaps between the items
    point_at = 1 + tf.cast(tf.random.stateless_uniform([b], next(keys)) * room, tf.int32)
    pointed = numbers & (tf.random.stateless_uniform([b], next(keys)) < POINTED)
    negative = numbers & (tf.random.stateless_uniform([b], next(keys)) < NEGATIVE)
    at = tf.where(is_point, point_at, 0)
    marked = tf.where(is_point, pointed, negative)[:, None] & tf.equal(slot, at[:, None])
    item = tf.where(marked[..., None, None], marks[:, None], item)
    kind = tf.where(marked, tf.where(is_point, POINT, MINUS)[:, None], kind)
    thick = tf.random.stateless_uniform([b, n, 1, 1], next(keys), *THICKNESS)
    item = tf.where(
        thick >= 0, item + thick * (dilate3(item) - item), item - thick * (erode3(item) - item)
    )
    return item, kind, label, used


def _placed(keys, item, kind, used):
    """(canvas float [b, h, w], centres float [b, MAX_ITEMS] in canvas columns): the items
    drawn left to right at the row's spacing, each by its own affine map."""
    b, n = tf.shape(item)[0], MAX_ITEMS
    flat = tf.reshape(item, [-1, 28, 28])
    on_lines = tf.reshape(kind != DIGIT, [-1])  # glyphs, points and dashes sit on the lines
    top, bottom = span(tf.reduce_any(flat > INK, 2))
    left, right = span(tf.reduce_any(flat > INK, 1))
    top = tf.where(on_lines, glyphs.CAP, tf.cast(top, tf.float32))
    bottom = tf.where(on_lines, glyphs.BASE, tf.cast(bottom, tf.float32))
    left, right = tf.cast(left, tf.float32), tf.cast(tf.maximum(right, left + 1), tf.float32)
    height = tf.random.stateless_uniform([b, 1], next(keys), *HEIGHT)
    size = tf.random.stateless_uniform([b, n], next(keys), *SIZE)
    scale = tf.reshape(height * size, [-1]) / tf.maximum(bottom - top, 4.0)  # item px -> canvas px
    lone = tf.equal(tf.reduce_sum(tf.cast(used, tf.int32), 1), 1)[:, None] & tf.equal(kind, OTHER)
    stretched = lone & (tf.random.stateless_uniform([b, 1], next(keys)) < 0.5)
    wider = tf.where(stretched, tf.random.stateless_uniform([b, n], next(keys), *STRETCH), 1.0)
    wider = tf.reshape(wider, [-1])
    slant = tf.random.stateless_uniform([b, 1], next(keys), -SLANT, SLANT)
    slant = tf.reshape(
        slant + tf.random.stateless_uniform([b, n], next(keys), -ITEM_SLANT, ITEM_SLANT), [-1]
    )
    weights = tf.math.log([[share for share, _ in SPACINGS.values()]])
    spacing = tf.random.stateless_categorical(weights, b, next(keys), dtype=tf.int32)[0]
    low = tf.gather([lo for _, (lo, _) in SPACINGS.values()], spacing)[:, None]
    high = tf.gather([hi for _, (_, hi) in SPACINGS.values()], spacing)[:, None]
    gap = (low + (high - low) * tf.random.stateless_uniform([b, n], next(keys))) * height
    ink_width = tf.reshape(scale * wider * (right - left), [b, n])
    step = tf.where(used, ink_width + gap, 0.0)
    x0 = tf.reshape(4.0 + tf.math.cumsum(step, axis=1, exclusive=True), [-1])  # ink's left edge
    base = (
        CANVAS[0] * 0.75 + tf.random.stateless_normal([b, n], next(keys), stddev=BASELINE) * height
    )
    base = tf.reshape(base, [-1])
    transforms = _transforms(scale, wider, slant, x0, base, left, bottom)
    on = tf.reshape(used, [-1])
    row_of_item = tf.boolean_mask(tf.repeat(tf.range(b), n), on)
    canvas = _drawn_onto(tf.boolean_mask(flat, on), tf.boolean_mask(transforms, on), row_of_item, b)
    mid_height = scale * (bottom - top) / 2
    centre = x0 + scale * wider * (right - left) / 2 - slant * mid_height
    return canvas, tf.reshape(centre, [b, n])


REACHES = (48, 96, 160, CANVAS[1])  # px: items drawn in groups as far right as these


def _drawn_onto(items: tf.Tensor, transforms: tf.Tensor, rows: tf.Tensor, b) -> tf.Tensor:
    """canvas float [b, h, w]: each of `items` [k, 28, 28] drawn bilinearly by its
    transform onto its row's canvas, the largest value where they cross. The op's output
    columns are the canvas's own from 0, so an item drawn only as far right as its ink
    reaches is the same pixels: each is, in a group of like reach (a row's ink ends
    near column 50 in half the rows, its first item earlier)."""
    h, w = CANVAS
    ink_end = tf.cast(span(tf.reduce_any(items > 0.0, 1))[1], tf.float32)
    # canvas column x reads item column a x + c y + d; from ink_end on, it reads zeros
    a, c, d = transforms[:, 0], transforms[:, 1], transforms[:, 2]
    reach = tf.maximum(ink_end - d, ink_end - c * (h - 1) - d) / a + 2.0
    canvas = tf.zeros([b, h, w])
    for low, high in zip((-float("inf"), *REACHES[:-1]), REACHES, strict=True):
        group = reach > low if high == w else (reach > low) & (reach <= high)
        drawn = tf.raw_ops.ImageProjectiveTransformV3(
            images=tf.boolean_mask(items, group)[..., None],
            transforms=tf.boolean_mask(transforms, group),
            output_shape=[h, high],
            interpolation="BILINEAR",
            fill_mode="CONSTANT",
            fill_value=0.0,
        )[..., 0]
        drawn = tf.math.unsorted_segment_max(drawn, tf.boolean_mask(rows, group), b)
        canvas = tf.maximum(canvas, tf.pad(drawn, [[0, 0], [0, 0], [0, w - high]]))
    return canvas


def _transforms(scale, wider, slant, x0, base, left, bottom) -> tf.Tensor:
    """float [k, 8]: each item's projective transform (canvas -> item, as
    ImageProjectiveTransformV3 wants it) of the map that draws item pixel (x, y) at
    X = x0 + scale wider (x - left) + slant (Y - base), Y = base + scale (y - bottom)."""
    inverse = 1.0 / scale
    zero = tf.zeros_like(inverse)
    return tf.stack(
        [
            inverse / wider,
            -inverse * slant / wider,
            left - inverse * (x0 - slant * base) / wider,
            zero,
            inverse,
            bottom - inverse * base,
            zero,
            zero,
        ],
        1,
    )


ROWS = 64  # rows a batch
WIDTH = 192  # px: a training row's width (up to eight items, gaps shortened)
STROKE_SHAPES = 1024  # pen-stroke shapes (relunet.data.strokes) beside the letters


def not_digits(seed: int) -> tf.Tensor:
    """float [g, 28, 28] on the glyph frame: the run's letters and symbols
    (relunet.data.glyphs.run_glyphs) and STROKE_SHAPES pen-stroke shapes, drawn once a
    run from its seed (rows then pick among them)."""
    stroke_key = tf.constant([seed, 0x5710], tf.int64)
    drawn = strokes(STROKE_SHAPES, stroke_key)  # in MNIST's 20x20 box: onto the glyph frame
    cap = int(glyphs.BASE - glyphs.CAP)
    on_lines = tf.image.resize(drawn[:, 4:24, 4:24, None], [cap, cap], antialias=True)[..., 0]
    side = (28 - cap) // 2
    on_lines = tf.pad(
        on_lines, [[0, 0], [int(glyphs.CAP), 28 - int(glyphs.BASE)], [side, 28 - cap - side]]
    )
    return tf.concat([glyphs.run_glyphs(seed), on_lines], 0)


def rows_pipeline(
    digits: tf.Tensor, labels: tf.Tensor, shapes: tf.Tensor, *, seed: int, steps: int, skip: int = 0
) -> tf.data.Dataset:
    """Batches of ROWS rows (images, {"kinds", "labels", "centres"}) for steps `skip` to
    `steps` of one pass, each drawn from (seed, 0, step) alone: a pass interrupted after
    `skip` steps continues with the very rows it would have had."""
    seed_ = tf.constant(seed, tf.int64)

    def batch(step: tf.Tensor):
        drawn = draw_rows(batch_key(seed_, 0, step), digits, labels, shapes, ROWS, WIDTH)
        return drawn.images, {
            "kinds": drawn.kinds,
            "labels": drawn.labels,
            "centres": drawn.centres,
        }

    return (
        tf.data.Dataset.range(skip, steps)
        .map(batch, num_parallel_calls=tf.data.AUTOTUNE, deterministic=True)
        .prefetch(tf.data.AUTOTUNE)
    )
