"""What a row of writing holds, and where: digits, a decimal point, a minus sign, and what
is not a digit (a letter, a symbol, a doodle).

`Find` is what says where a row's items are: the learned finder
(relunet.training.finder, through relunet.inference) is one; `apart`, which needs no
model, is the other. `number_marks` says what the items other than digits make of a
number: a point between two digits, a sign before the first, or something that is not
part of any number.
"""

from __future__ import annotations

from collections.abc import Callable

import tensorflow as tf

from relunet.base.mnist import DIGIT, MINUS, NOTHING, OTHER, POINT
from relunet.imaging.measure import label
from relunet.reading.cuts import INK

OVERLAP = 0.5  # components sharing this share of the narrower one's columns: one digit

Find = Callable[[tf.Tensor], tuple[tf.Tensor, tf.Tensor]]
"""Where a row's items are: rows float [1, 28, w] (relunet.imaging.rows) -> (centres float
[k], their columns, left to right; kinds int32 [k], relunet.base.mnist's DIGIT, OTHER,
POINT or MINUS). The learned finder (relunet.training.finder) is one; `apart` needs no
model."""


def apart(rows: tf.Tensor) -> tuple[tf.Tensor, tf.Tensor]:
    """A Find that needs no model: a digit for each group of the row's ink components
    whose columns overlap by at least OVERLAP of the narrower one's (a 4's two strokes, a
    5's flag: one digit), at the group's middle. Digits written apart read right;
    touching ones read as one, which the digit model then rejects: the learned finder
    (relunet.training.finder) is what reads those."""
    row = rows[0]
    inked = row > INK
    component = tf.reshape(tf.unique(tf.reshape(label(inked), [-1]))[1], tf.shape(row))
    count = tf.reduce_max(component) + 1
    columns = tf.range(tf.shape(row)[1])[None, :] + tf.zeros_like(component)
    flat, where = tf.reshape(component, [-1]), tf.reshape(columns, [-1])
    on = tf.reshape(inked, [-1])
    first = tf.math.unsorted_segment_min(tf.where(on, where, 1 << 30), flat, count)
    end = tf.math.unsorted_segment_max(tf.where(on, where + 1, -1), flat, count)
    real = end > first  # the background's number has no ink
    first, end = tf.boolean_mask(first, real), tf.boolean_mask(end, real)
    shared = tf.minimum(end[:, None], end[None, :]) - tf.maximum(first[:, None], first[None, :])
    narrower = tf.minimum(end - first, 1 << 30)
    narrower = tf.minimum(narrower[:, None], narrower[None, :])
    joined = tf.cast(
        tf.cast(shared, tf.float32) >= OVERLAP * tf.cast(narrower, tf.float32), tf.float32
    )

    def wider(reach, _):  # reach through one more step, until nothing changes
        further = tf.cast(tf.matmul(reach, reach) > 0, tf.float32)
        return further, tf.reduce_any(further != reach)

    reach, _ = tf.while_loop(
        lambda reach, changed: changed, wider, (joined, tf.constant(True)), maximum_iterations=16
    )
    left = tf.reduce_min(tf.where(reach > 0, first[None, :], 1 << 30), 1)
    right = tf.reduce_max(tf.where(reach > 0, end[None, :], -1), 1)
    starts, index = tf.unique(left)  # one group a leftmost column
    right = tf.math.unsorted_segment_max(right, index, tf.size(starts))
    order = tf.argsort(starts)
    centres = tf.cast(tf.gather(starts, order) + tf.gather(right, order) - 1, tf.float32) / 2
    return centres, tf.fill(tf.shape(centres), DIGIT)


def number_marks(kinds: tf.Tensor) -> dict[str, tf.Tensor]:
    """What a row's items other than digits make of it: a decimal point between two
    digits (`point`: the digits before it), a minus sign before the first (`minus`), and
    whether anything else is there (`not_number`: a letter, a symbol, a second point,
    a sign anywhere else)."""
    digits_before = tf.cumsum(tf.cast(tf.equal(kinds, DIGIT), tf.int32), exclusive=True)
    count = tf.reduce_sum(tf.cast(tf.equal(kinds, DIGIT), tf.int32))
    is_point, is_minus = tf.equal(kinds, POINT), tf.equal(kinds, MINUS)
    at = tf.reduce_max(tf.where(is_point, digits_before, -1))
    points = tf.reduce_sum(tf.cast(is_point, tf.int32))
    leading = (tf.size(kinds) > 1) & tf.equal(tf.concat([kinds, [NOTHING]], 0)[0], MINUS)
    misplaced = tf.reduce_sum(tf.cast(is_minus, tf.int32)) > tf.cast(leading, tf.int32)
    bad_point = (points > 1) | ((points == 1) & ((at <= 0) | (at >= count)))
    other = tf.reduce_any(tf.equal(kinds, OTHER))
    return {
        "point": tf.where(points == 1, at, -1),
        "minus": leading,
        "not_number": other | misplaced | bad_point,
    }
