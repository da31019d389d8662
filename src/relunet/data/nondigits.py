"""Shapes that are not digits, made in TensorFlow ops, a batch at a time: what a network
learns to be unsure about (outlier exposure, Hendrycks et al. 2019).

With `--non-digits P`, each training batch of b digits gets round(P b) of these, labelled
with no class (a uniform target over the ten), so the network learns to spread its
probability over all ten for what is not a digit, and relunet.training.calibrate's
threshold answers it "not a digit". Every one is made by code from random numbers, the
batch's own MNIST digits and the Hershey pen strokes of letters and symbols
(relunet.data.glyphs: never a glyph that can pass for a digit, never a TTF or OTF font):

  strokes    pen strokes (relunet.data.strokes): a polyline, a triangle or a square, a
             star, a zigzag, a spiral, crossing lines, a grid, an arrow, a ring with
             marks inside, a house, strokes on a lattice, a sun; drawn 1 to 2 px wide
             into MNIST's 20x20 box (half of them);
  fusions    two digits drawn over each other, offset, as one;
  pairs      two digits side by side squeezed into one box (a number not split);
  letters    letters and symbols drawn with a jittered pen (a third of them).

No fragment of a digit, and no ring with more than four sides: a stroke of a digit, or a
hexagon, is a 1 or a 0 too often for "not a digit" to be the right answer for it.

Each a function of (seed, epoch, step) alone, as relunet.data.augment's distortions are.
"""

from __future__ import annotations

import tensorflow as tf

from relunet.base.mnist import IMAGE_SIZE, PIXEL_MAX
from relunet.data.strokes import BOX, strokes
from relunet.imaging.measure import span
from relunet.imaging.transform import centred

KINDS = ("strokes", "strokes", "fusions", "pairs", "letters", "letters")  # each slot one
FUSION_SHIFT = (5, 10)  # px a fused digit moves sideways: at least, and less than
FUSION_DROP = (-4, 5)  # px it moves down (negative: up): at least, and less than
INK = 0.1  # a pixel above this (of 1) is ink, when a shape is boxed again


def non_digits(digits: tf.Tensor, count: int, key: tf.Tensor, letters: tf.Tensor) -> tf.Tensor:
    """uint8 [count, 28, 28, 1] shapes that are not digits, from a batch of uint8 digits
    [b, 28, 28, 1] (whose digits the fusions and pairs are made of) and drawn `letters`
    float [g, 28, 28] (relunet.data.glyphs.run_glyphs)."""
    kind_key, picks_key, strokes_key, fusions_key, letters_key = tf.unstack(
        tf.random.experimental.stateless_split(key, num=5)
    )
    kind = tf.random.stateless_uniform([count], kind_key, 0, len(KINDS), dtype=tf.int32)
    x = tf.cast(digits[..., 0], tf.float32) / PIXEL_MAX
    picks = tf.random.stateless_uniform([count, 2], picks_key, 0, tf.shape(x)[0], dtype=tf.int32)
    a, b = tf.gather(x, picks[:, 0]), tf.gather(x, picks[:, 1])
    shapes = strokes(count, strokes_key)
    made = {"strokes": shapes, "fusions": _reboxed(fusions(a, b, fusions_key))}
    made["pairs"] = _reboxed(pairs(a, b))
    chosen = tf.random.stateless_uniform(
        [count], letters_key, 0, tf.shape(letters)[0], dtype=tf.int32
    )
    made["letters"] = _reboxed(tf.gather(letters, chosen))
    # [count, KINDS, 28, 28]: each kind made for every slot, one kept
    every = tf.stack([made[name] for name in KINDS], axis=1)
    chosen = tf.gather(every, kind, batch_dims=1)
    return tf.cast(tf.round(tf.clip_by_value(chosen, 0.0, 1.0) * PIXEL_MAX), tf.uint8)[..., None]


def fusions(a: tf.Tensor, b: tf.Tensor, key: tf.Tensor) -> tf.Tensor:
    """[n, 28, 28]: digit b drawn over digit a, moved 5 to 9 px sideways and up to 4 up
    or down."""
    n = tf.shape(a)[0]
    shift_key, side_key, drop_key = tf.unstack(tf.random.experimental.stateless_split(key, num=3))
    dx = tf.random.stateless_uniform([n], shift_key, *FUSION_SHIFT, dtype=tf.int32)
    dx = dx * tf.where(tf.random.stateless_uniform([n], side_key) < 0.5, -1, 1)
    dy = tf.random.stateless_uniform([n], drop_key, *FUSION_DROP, dtype=tf.int32)
    moved = tf.map_fn(
        lambda args: tf.roll(args[0], shift=[args[2], args[1]], axis=[0, 1]),
        (b, dx, dy),
        fn_output_signature=tf.float32,
    )
    return tf.maximum(a, moved)


def pairs(a: tf.Tensor, b: tf.Tensor) -> tf.Tensor:
    """[n, 28, 2 BOX]: digits a and b side by side, touching (each its 20 px box's
    columns), as a number written close."""
    margin = (IMAGE_SIZE - BOX) // 2
    box = slice(margin, margin + BOX)
    return tf.concat([a[:, :, box], b[:, :, box]], axis=2)


def _reboxed(images: tf.Tensor) -> tf.Tensor:
    """[n, 28, 28]: each image's ink cropped to a square around it, scaled into the 20x20
    box and centred by mass, as MNIST's digits were made."""
    h, w = tf.shape(images)[1], tf.shape(images)[2]
    ink = images > INK
    rows, cols = tf.reduce_any(ink, 2), tf.reduce_any(ink, 1)

    def ends(flags):  # [n] first and one past the last inked row (or column), floats
        low, high = span(flags)
        return tf.cast(low, tf.float32), tf.cast(tf.maximum(high, low + 1), tf.float32)

    top, bottom = ends(rows)
    left, right = ends(cols)
    side = tf.maximum(bottom - top, right - left)
    cy, cx = (top + bottom) / 2, (left + right) / 2
    hf, wf = tf.cast(h - 1, tf.float32), tf.cast(w - 1, tf.float32)
    boxes = tf.stack(
        [(cy - side / 2) / hf, (cx - side / 2) / wf, (cy + side / 2) / hf, (cx + side / 2) / wf], 1
    )
    boxed = tf.image.crop_and_resize(
        images[..., None], boxes, tf.range(tf.shape(images)[0]), [BOX, BOX]
    )[..., 0]
    margin = (IMAGE_SIZE - BOX) // 2
    return centred(tf.pad(boxed, [[0, 0], [margin, margin], [margin, margin]]))
