"""Which ink is which digit, once something has said where the digits are: in TensorFlow
ops, on one row of writing.

Given each digit's centre (a column), the ink's 8-connected components decide first: a
component belongs whole to the centre it claims (the one it holds the most ink beside,
within REACH of its column), so digits whose boxes overlap but whose ink is apart are
never cut; a component claiming several centres holds digits that touch, and is cut
between each two along a seam, the top-to-bottom path through its ink that crosses the
least of it, kept BAND of the way from either centre (the thin place where two digits
touch, wherever they lean); a component claiming none (a 5's flag, a 4's second stroke,
a broken stroke's end) goes to the centre nearest its own centre of mass.
"""

from __future__ import annotations

import tensorflow as tf

from relunet.imaging.measure import label, span
from relunet.imaging.morphology import dilate3

INK = 0.25  # a pixel at least this dark (of 1) is ink for the components
REACH = 0.1  # a centre claims the component with the most ink within this share of the
# ink's height (all the row's ink, top to bottom) of its column
BAND = 0.15  # a seam keeps this share of the distance between two centres off each
STRAY = 0.02  # a seam's cost of straying from the midpoint, where it crosses no ink
FAINT = 0.02  # pixels at least this dark go to the owner beside them (antialiased edges)


def owners(ink: tf.Tensor, centres: tf.Tensor) -> tf.Tensor:
    """int32 [h, w]: the centre (1-based, 0: no one's) whose digit each pixel of `ink`
    [h, w] (0..1, a row of writing) is part of; `centres` float [n >= 1] are columns,
    left to right. Found within the ink's box and a pixel around it (what lies further
    out is no one's): the box keeps the pixels' order, so the answer is the whole page's."""
    h, w = tf.shape(ink)[0], tf.shape(ink)[1]
    inked = ink > INK
    box = _around(tf.reduce_any(inked, 1), h) + _around(tf.reduce_any(inked, 0), w)
    top, bottom, left, right = box
    owner = _owners_within(ink, box, centres)
    return tf.pad(owner, [[top, h - bottom], [left, w - right]])


def _around(flags: tf.Tensor, n: tf.Tensor) -> tuple[tf.Tensor, tf.Tensor]:
    """(first, end) of the flags' span and one more each side, within 0..n (no flag:
    the first)."""
    first, end = span(flags)
    first, end = tf.minimum(first, end), tf.maximum(end, tf.minimum(first, end) + 1)
    return tf.maximum(first - 1, 0), tf.minimum(end + 1, n)


def _owners_within(ink: tf.Tensor, box: tuple[tf.Tensor, ...], centres: tf.Tensor) -> tf.Tensor:
    """`owners` of the page's pixels in `box` (top, bottom, left, right; ends excluded)."""
    top, bottom, left, right = box
    part = ink[top:bottom, left:right]
    inked = part > INK
    shape = tf.shape(part)
    component = tf.reshape(tf.unique(tf.reshape(label(inked), [-1]))[1], shape)
    count = tf.reduce_max(component) + 1  # dense numbers; the background's is one of them
    columns = tf.cast(tf.range(left, right), tf.float32)  # the page's
    claim = _claims(part, inked, component, count, centres, columns)
    claims = tf.math.unsorted_segment_sum(
        tf.cast(claim >= 0, tf.int32), tf.maximum(claim, 0), count
    )
    first = tf.math.unsorted_segment_min(
        tf.range(tf.size(centres)), tf.where(claim >= 0, claim, count), count + 1
    )[:count]
    owner = tf.gather(first, component) + _past_seams(ink, box, component, claim, centres)
    owner = tf.minimum(owner, tf.gather(first + tf.maximum(claims, 1) - 1, component))
    owner = tf.where(
        tf.gather(claims, component) > 0,
        owner,
        tf.gather(_nearest(part, component, count, centres, columns), component),
    )
    owner = tf.where(inked, owner + 1, 0)
    beside = tf.cast(dilate3(tf.cast(owner, tf.float32)), tf.int32)
    return tf.where((owner == 0) & (part > FAINT), beside, owner)


def _claims(ink, inked, component, count, centres, columns) -> tf.Tensor:
    """int32 [n]: the component each centre claims (-1: none has ink near it)."""
    top, bottom = span(tf.reduce_any(inked, 1))
    h = tf.cast(bottom - top, tf.float32)  # the ink's height
    near = tf.abs(columns[None, :] - centres[:, None]) <= tf.maximum(1.0, REACH * h)  # [n, w]
    weight = tf.where(near[:, None, :] & inked[None], ink[None], 0.0)  # [n, h, w]
    flat = tf.reshape(tf.transpose(weight, [1, 2, 0]), [-1, tf.size(centres)])
    mass = tf.math.unsorted_segment_sum(flat, tf.reshape(component, [-1]), count)  # [count, n]
    return tf.where(tf.reduce_max(mass, 0) > 0, tf.argmax(mass, 0, output_type=tf.int32), -1)


def _past_seams(page, box, component, claim, centres) -> tf.Tensor:
    """int32 [h, w] of the box: for each pixel, how many seams of its own component lie
    left of it (a seam between each two neighbouring centres that claim the same
    component). Seams are found on the whole page: their path runs top to bottom."""
    top, bottom, left, right = box
    h, w = tf.shape(component)[0], tf.shape(component)[1]
    same = tf.equal(claim[:-1], claim[1:]) & (claim[:-1] >= 0)  # [n - 1]

    def some():  # only the pairs that share a component: each seam is found on its own
        pair = tf.where(same)[:, 0]
        own = tf.equal(component[None], tf.gather(claim, pair)[:, None, None])  # [pairs, h, w]
        whole = tf.pad(
            own, [[0, 0], [top, tf.shape(page)[0] - bottom], [left, tf.shape(page)[1] - right]]
        )
        paths = seams(
            tf.where(whole, page[None], 0.0), tf.gather(centres, pair), tf.gather(centres, pair + 1)
        )
        past = tf.range(w)[None, None, :] >= paths[:, top:bottom, None] - left
        return tf.reduce_sum(tf.cast(past & own, tf.int32), 0)

    return tf.cond(tf.reduce_any(same), some, lambda: tf.zeros([h, w], tf.int32))


def _nearest(ink, component, count, centres, columns) -> tf.Tensor:
    """int32 [count]: the centre nearest each component's centre of mass (its columns)."""
    flat = tf.reshape(component, [-1])
    weighed = tf.math.unsorted_segment_sum(tf.reshape(ink * columns[None, :], [-1]), flat, count)
    mass = tf.math.unsorted_segment_sum(tf.reshape(ink, [-1]), flat, count)
    x = weighed / tf.maximum(mass, 1e-6)
    return tf.argmin(tf.abs(x[:, None] - centres[None, :]), 1, output_type=tf.int32)


def seams(ink: tf.Tensor, left: tf.Tensor, right: tf.Tensor) -> tf.Tensor:
    """int32 [k, h]: for each of k pairs of neighbouring centres (columns left [k] <
    right [k]) and its ink [k, h, w], the path from top to bottom, moving at most one
    column a row, that crosses the least ink between them (BAND of the way from either),
    nearest the midpoint where several cross none: its column in each row."""
    k, w = tf.shape(ink)[0], tf.shape(ink)[2]
    columns = tf.cast(tf.range(w), tf.float32)[None, :]
    lo = tf.math.ceil(left + BAND * (right - left))
    hi = tf.maximum(tf.floor(right - BAND * (right - left)), lo)
    middle = (left + right) / 2
    inside = (columns >= lo[:, None]) & (columns <= hi[:, None])
    stray = STRAY * tf.abs(columns - middle[:, None]) / tf.maximum(hi - lo, 1.0)[:, None]
    energy = tf.transpose(tf.where(inside[:, None, :], ink + stray[:, None, :], 1e9), [1, 0, 2])

    def down(carry, row):  # the cheapest way to each column of the next row, and whence
        cost, _ = carry
        beside = tf.stack(
            [
                tf.pad(cost[:, :-1], [[0, 0], [1, 0]], constant_values=1e18),
                cost,
                tf.pad(cost[:, 1:], [[0, 0], [0, 1]], constant_values=1e18),
            ]
        )
        return tf.reduce_min(beside, 0) + row, tf.cast(tf.argmin(beside, 0), tf.int32) - 1

    costs, moves = tf.scan(down, energy[1:], initializer=(energy[0], tf.zeros([k, w], tf.int32)))
    end = tf.argmin(tf.concat([energy[:1], costs], 0)[-1], -1, output_type=tf.int32)

    def up(column, move):
        return column + tf.gather(move, column, batch_dims=1)

    path = tf.scan(up, moves, initializer=end, reverse=True)  # rows 0 .. h - 2
    return tf.transpose(tf.concat([path, end[None]], 0))
