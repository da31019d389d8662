"""Measures of images in TensorFlow ops: connected components, centres of mass, spans.

Each is written once here for the reader (relunet.reading), the model's deskew
(relunet.imaging.transform) and the shapes training draws (relunet.data.nondigits).
"""

from __future__ import annotations

import tensorflow as tf

from relunet.imaging.morphology import dilate3

JUMPS = 3  # label jumps per pass of the component labelling (see `label`)


def label(mask: tf.Tensor) -> tf.Tensor:
    """int32 [h, w]: each pixel of the 0/1 mask [h, w] labelled with the largest 1-based
    flat index of a pixel of its 8-connected component (0 off the mask): the components
    scipy.ndimage.label finds with a 3x3 structure, named differently. Labelled within
    the mask's box (a photo's ink is under a tenth of its page), then numbered in the
    whole mask's pixels: the box keeps the pixels' order, so the labels are those the
    whole mask would get."""
    m = tf.cast(mask, tf.float32)
    h, w = tf.shape(m)[0], tf.shape(m)[1]
    top, bottom = span(tf.reduce_any(m != 0, 1))
    left, right = span(tf.reduce_any(m != 0, 0))
    top, left = tf.minimum(top, bottom), tf.minimum(left, right)  # no ink: an empty box
    box = m[top:bottom, left:right]
    inside = _labelled(box) - 1  # the largest index of the component in the box, or -1
    wide = tf.maximum(tf.shape(box)[1], 1)
    index = (top + inside // wide) * w + left + inside % wide + 1
    index = tf.where(inside >= 0, index, 0)
    return tf.pad(index, [[top, h - bottom], [left, w - right]])


def _labelled(m: tf.Tensor) -> tf.Tensor:
    """`label` of a float 0/1 mask [h, w], in its own pixels. Each pass spreads labels to
    neighbours (a 3x3 dilation), then jumps: a pixel takes the label of the pixel its
    label names (in its own component, and at least as large), JUMPS times, which
    shortens long chains exponentially instead of a pixel per pass."""
    h, w = tf.shape(m)[0], tf.shape(m)[1]
    on = tf.reshape(m, [-1])
    labels = (tf.cast(tf.range(h * w), tf.float32) + 1.0) * on

    def one_pass(labels, changed):
        flat = tf.reshape(dilate3(tf.reshape(labels, [h, w])), [-1]) * on
        for _ in range(JUMPS):
            named = tf.gather(flat, tf.maximum(tf.cast(flat, tf.int32) - 1, 0))
            flat = tf.where(flat > 0, tf.maximum(flat, named), 0.0)
        return flat, tf.reduce_any(flat != labels)

    labels, _ = tf.while_loop(
        lambda labels, changed: changed,
        one_pass,
        (labels, tf.constant(True)),
        shape_invariants=(tf.TensorShape([None]), tf.TensorShape([])),
        maximum_iterations=h * w,
    )
    return tf.reshape(tf.cast(labels, tf.int32), [h, w])


def centre_of_mass(images: tf.Tensor) -> tuple[tf.Tensor, tf.Tensor]:
    """(row, col) of the centre of mass of each image [..., h, w], in the images' dtype
    (pixel centres at whole numbers); an empty image's is its middle, ((h - 1) / 2,
    (w - 1) / 2). Both have the images' leading shape."""
    shape = tf.shape(images)
    rows = tf.range(shape[-2], dtype=images.dtype)
    cols = tf.range(shape[-1], dtype=images.dtype)
    mass = tf.reduce_sum(images, [-2, -1])
    weighed = tf.where(mass > 0, mass, tf.ones_like(mass))
    row = tf.reduce_sum(images * rows[:, None], [-2, -1]) / weighed
    col = tf.reduce_sum(images * cols[None, :], [-2, -1]) / weighed
    middle = (tf.cast(shape[-2:], images.dtype) - 1) / 2
    return tf.where(mass > 0, row, middle[0]), tf.where(mass > 0, col, middle[1])


def span(flags: tf.Tensor) -> tuple[tf.Tensor, tf.Tensor]:
    """int32 (first, end) along the last axis of `flags` [..., n]: the first index where
    a flag holds and one past the last; (n, 0) where none does, an empty span."""
    n = tf.shape(flags)[-1]
    index = tf.range(n)
    first = tf.reduce_min(tf.where(flags, index, n), -1)
    end = tf.reduce_max(tf.where(flags, index + 1, 0), -1)
    return first, end
