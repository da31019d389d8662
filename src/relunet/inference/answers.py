"""What each image reads as, from its digits' calibrated probabilities: a number, one
digit, "not a digit", or nothing at all. One function for `relunet predict`, `evaluate
--images`, the exported `serving_bytes` signature and the drawing page behind it.

An image reads as a number when ink was found and every digit found in it was read
(none under the model's `reject_below`, no more than MAX_DIGITS), with nothing beside
them but a decimal point between two of them and a minus sign before the first; its
digits, left to right, are the number, with its point and sign (`-3.14`). Otherwise it
is "not a digit" (something was written that relunet will not read as a number: a
letter, a symbol, a digit it cannot read) or, with no ink at all, "no digit found".
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import tensorflow as tf

from relunet.base.mnist import INPUT_SHAPE, MAX_DIGITS
from relunet.base.signatures import (
    CLASS,
    DIGIT_BOXES,
    DIGIT_COUNT,
    DIGIT_FOUND,
    DIGIT_PROBABILITIES,
    DIGITS,
    NOT_A_DIGIT,
    NUMBER,
    PROBABILITIES,
)


def found_slots(count: tf.Tensor) -> tf.Tensor:
    """bool [n, MAX_DIGITS]: the digit slots that hold a digit, the first `count` [n] of
    each image's; only these need classifying."""
    return tf.range(MAX_DIGITS)[None, :] < count[:, None]


def classify_slots(
    read: dict[str, tf.Tensor], classify: Callable[[tf.Tensor], tuple[tf.Tensor, tf.Tensor]]
) -> tuple[tf.Tensor, tf.Tensor]:
    """Each digit slot's (probabilities [n, MAX_DIGITS, classes], rejected [n, MAX_DIGITS])
    for read_batch's dict of n images: only the digits found are gathered and classified,
    in one call of `classify` (uint8 digits [k, 28, 28, 1] -> probabilities [k, classes]
    and rejected [k]), and scattered back; an empty slot gets zeros and False. In the
    exported graph and for relunet predict alike."""
    slots = tf.reshape(read["digits"], [-1, *INPUT_SHAPE])
    found = tf.where(tf.reshape(found_slots(read["count"]), [-1]))
    probabilities, rejected = classify(tf.gather(slots, found[:, 0]))
    every = tf.shape(slots, out_type=tf.int64)[:1]
    classes = probabilities.shape[-1]
    probabilities = tf.scatter_nd(found, probabilities, tf.concat([every, [classes]], 0))
    rejected = tf.scatter_nd(found, tf.cast(rejected, tf.int32), every) > 0
    return (
        tf.reshape(probabilities, [-1, MAX_DIGITS, classes]),
        tf.reshape(rejected, [-1, MAX_DIGITS]),
    )


def serving_outputs(
    read: dict[str, tf.Tensor], probabilities: tf.Tensor, rejected: tf.Tensor
) -> dict[str, tf.Tensor]:
    """serving_bytes' outputs for a batch of n images, from relunet.reading.digits.read_batch's
    dict and each digit slot's probabilities [n, MAX_DIGITS, 10] and rejection [n,
    MAX_DIGITS] (a slot past an image's count is ignored):

        class                int64 [n]: the digit when exactly one was read (and no
                             point or sign), else -1
        probabilities        float [n, 10]: the first digit's (zeros with no digit)
        digit_found          bool [n]: ink that stands out, in a digit's size or more
        not_a_digit          bool [n]: something written that is not read as digits
        number               string [n]: the digits read, left to right, with a decimal
                             point and a minus sign where written ("" if none)
        digits               int64 [n, MAX_DIGITS]: each digit's class, -1 past the count
        digit_count          int32 [n]: the digits found
        digit_probabilities  float [n, MAX_DIGITS]: each digit's probability
        digit_boxes          int32 [n, MAX_DIGITS, 4]: top, left, bottom, right in the
                             file's pixels (ends excluded)
    """
    count = read["count"]
    slot = found_slots(count)
    classes = tf.where(slot, tf.argmax(probabilities, -1), -1)
    confidence = tf.where(slot, tf.reduce_max(probabilities, -1), 0.0)
    found = read["found"]
    unread = tf.reduce_any(rejected & slot, 1) | read["too_many"] | read["not_number"]
    not_a_digit = found & unread
    read_as_digits = found & tf.logical_not(not_a_digit)
    written = tf.where(slot, tf.strings.as_string(classes), "")
    # the decimal point before digit `point` (-1: none), the sign before them all
    point = tf.equal(tf.range(MAX_DIGITS)[None, :], read["point"][:, None]) & slot
    written = tf.where(point, tf.strings.join([".", written]), written)
    number = tf.strings.reduce_join(written, axis=1)
    number = tf.where(read["minus"], tf.strings.join(["-", number]), number)
    plain = tf.logical_not(read["minus"]) & (read["point"] < 0)
    one = read_as_digits & tf.equal(count, 1) & plain
    return {
        CLASS: tf.where(one, classes[:, 0], -1),
        PROBABILITIES: probabilities[:, 0] * tf.cast(found, probabilities.dtype)[:, None],
        DIGIT_FOUND: found,
        NOT_A_DIGIT: not_a_digit,
        NUMBER: tf.where(read_as_digits, number, ""),
        DIGITS: classes,
        DIGIT_COUNT: count,
        DIGIT_PROBABILITIES: confidence,
        DIGIT_BOXES: read["boxes"],
    }


def as_result(name: str, said: dict[str, np.ndarray]) -> dict:
    """One input's outputs (one image's of `serving_outputs`, as NumPy) as `relunet
    predict` gives them: the number read, each digit with its class, probability and box,
    whether it is not a digit or nothing at all, and the one digit's class and
    probabilities when exactly one was read."""
    one = int(said[CLASS]) >= 0
    count = int(said[DIGIT_COUNT])
    return {
        "input": name,
        "digits": said[NUMBER].decode(),
        "class": int(said[CLASS]) if one else None,
        "probability": round(float(said[PROBABILITIES].max()), 6) if one else None,
        "probabilities": [round(float(p), 6) for p in said[PROBABILITIES]] if one else None,
        "digit_found": bool(said[DIGIT_FOUND]),
        "not_a_digit": bool(said[NOT_A_DIGIT]),
        "per_digit": [
            {
                "class": int(said[DIGITS][k]),
                "probability": round(float(said[DIGIT_PROBABILITIES][k]), 6),
                "box": [int(v) for v in said[DIGIT_BOXES][k]],
            }
            for k in range(count)
        ],
    }
