"""A row of digits found in a page's ink, in TensorFlow ops: which ink is which digit.

The ink's connected components (relunet.reading.ink labels them) are grouped into digits:
two components whose columns overlap by half the narrower one's width are one digit
(a 4 written in two strokes, an 8 drawn as two loops), and so is a small component
beside or above a larger one (a 5's flag, a 7's bar). A group much wider than tall is
two or three digits that touch, cut where the fewest ink pixels cross a column near
where equal parts would end. The digits are read left to right, at most MAX_DIGITS.
"""

from __future__ import annotations

import tensorflow as tf

OVERLAP = 0.5  # columns shared, as a share of the narrower component: one digit
FRAGMENT = 0.6  # a component under this share of its neighbour's height ...
FRAGMENT_GAP = 0.35  # ... within this share of that height beside it: part of it
SPLIT_ASPECT = 1.3  # a group this many times wider than tall holds touching digits
DIGIT_ASPECT = 0.7  # a digit's usual width, as a share of its height: how many it holds
MAX_PARTS = 3  # a group is cut into at most this many digits
PART_WIDTH = 0.45  # a cut-off part is at least this share of the group's height wide
PART_INK = 0.4  # ... and holds at least this share of an equal part's ink
CUT_INK = 0.6  # a cut column holds under this share of the median inked column's ink


def digit_slots(ids: tf.Tensor) -> tuple[tf.Tensor, tf.Tensor, tf.Tensor]:
    """From component ids [h, w] (0: no ink), each digit's group and where to look for it:
    (group [k] int32, windows [k, 4] int32 of top, left, bottom, right (ends excluded:
    its group's rows, its own columns), group map [h, w] int32 with 1-based group
    numbers), left to right, k unbounded (MAX_DIGITS is the caller's to apply)."""
    h, w = tf.shape(ids)[0], tf.shape(ids)[1]
    flat = tf.reshape(ids, [-1])
    inked = tf.where(flat > 0)[:, 0]
    components, index = tf.unique(tf.gather(flat, inked))
    n = tf.size(components)
    rows = tf.cast(inked // tf.cast(w, tf.int64), tf.int32)
    cols = tf.cast(inked % tf.cast(w, tf.int64), tf.int32)
    top = tf.math.unsorted_segment_min(rows, index, n)
    bottom = tf.math.unsorted_segment_max(rows, index, n) + 1
    left = tf.math.unsorted_segment_min(cols, index, n)
    right = tf.math.unsorted_segment_max(cols, index, n) + 1
    group = _groups(top, bottom, left, right)  # per component, left to right
    group_of_pixel = tf.gather(group, index)
    g = tf.reduce_max(tf.concat([group, [-1]], 0)) + 1  # 0 on a page without ink
    g_top = tf.math.unsorted_segment_min(rows, group_of_pixel, g)
    g_bottom = tf.math.unsorted_segment_max(rows, group_of_pixel, g) + 1
    g_left = tf.math.unsorted_segment_min(cols, group_of_pixel, g)
    g_right = tf.math.unsorted_segment_max(cols, group_of_pixel, g) + 1
    # Column profiles of each group's ink: where touching digits are cut.
    profile = tf.math.unsorted_segment_sum(
        tf.ones_like(cols, tf.float32), group_of_pixel * w + cols, g * w
    )
    bounds = tf.map_fn(
        lambda args: _cuts(*args),
        (g_top, g_bottom, g_left, g_right, tf.reshape(profile, [g, w])),
        fn_output_signature=tf.TensorSpec([MAX_PARTS + 1], tf.int32),
    )
    starts, stops = bounds[:, :-1], bounds[:, 1:]
    real = tf.reshape(stops > starts, [-1])
    slot_group = tf.boolean_mask(tf.repeat(tf.range(g), MAX_PARTS), real)
    top_of, bottom_of = (tf.repeat(g, MAX_PARTS) for g in (g_top, g_bottom))  # each part's
    windows = tf.boolean_mask(
        tf.stack([top_of, tf.reshape(starts, [-1]), bottom_of, tf.reshape(stops, [-1])], 1), real
    )
    group_map = tf.scatter_nd(tf.stack([rows, cols], 1), group_of_pixel + 1, tf.stack([h, w]))
    return slot_group, windows, group_map


def _groups(top, bottom, left, right) -> tf.Tensor:
    """Each component's group, numbered 0, 1, ... from left to right: the connected
    parts of the graph in which components that share columns, or a fragment and its
    neighbour, are joined. A fragment is lower than FRAGMENT of its neighbour's height
    and within FRAGMENT_GAP of that height beside it (a 5's flag, a 7's bar, a stroke
    the pen skipped). Its ink does not count: a 1 is light beside an 8, and a digit."""
    height, width = bottom - top, right - left
    shared = tf.minimum(right[:, None], right[None, :]) - tf.maximum(left[:, None], left[None, :])
    narrower = tf.minimum(width[:, None], width[None, :])
    overlapping = tf.cast(shared, tf.float32) >= OVERLAP * tf.cast(narrower, tf.float32)
    gap = -shared  # columns between them (negative: they overlap)
    taller = tf.cast(height[:, None], tf.float32)  # row i as the neighbour of j
    small = tf.cast(height[None, :], tf.float32) < FRAGMENT * taller
    fragment = small & (tf.cast(gap, tf.float32) <= FRAGMENT_GAP * taller)
    joined = overlapping | fragment | tf.transpose(fragment)
    reach = tf.cast(joined, tf.float32)

    def closer(reach, _):  # reach through one more step, until nothing changes
        wider = tf.cast(tf.matmul(reach, reach) > 0, tf.float32)
        return wider, tf.reduce_any(wider != reach)

    reach, _ = tf.while_loop(
        lambda reach, changed: changed, closer, (reach, tf.constant(True)), maximum_iterations=16
    )
    # A group is named by its leftmost component's column, then numbered in that order.
    leftmost = tf.reduce_min(tf.where(reach > 0, left[None, :], tf.int32.max), axis=1)
    _, group = tf.unique(tf.gather(leftmost, tf.argsort(leftmost, stable=True)))
    order = tf.argsort(leftmost, stable=True)
    return tf.scatter_nd(order[:, None], group, tf.shape(left))


def _cuts(top, bottom, left, right, profile) -> tf.Tensor:
    """[MAX_PARTS + 1] column bounds of the digits in one group: [left, right, right,
    ...] for one digit; for touching digits, cuts at the thinnest columns near where
    equal parts would end. A cut is kept only where it looks like two digits touching:
    each part at least PART_WIDTH of the height wide and holding PART_INK of an equal
    part's ink,
    the cut column thin (under CUT_INK of the median inked column). Otherwise fewer
    parts are tried, down to one: a wide 0 or a 2's long tail stays one digit."""
    height, width = bottom - top, right - left
    wide = tf.cast(width, tf.float32) > SPLIT_ASPECT * tf.cast(height, tf.float32)
    guess = tf.cast(
        tf.round(tf.cast(width, tf.float32) / (DIGIT_ASPECT * tf.cast(height, tf.float32))),
        tf.int32,
    )
    parts = tf.where(wide, tf.clip_by_value(guess, 1, MAX_PARTS), 1)
    inked = tf.boolean_mask(profile, profile > 0)
    median = tf.sort(inked)[tf.size(inked) // 2]
    total = tf.reduce_sum(profile)

    def bounds_for(parts):
        reach = tf.maximum(1, width // (3 * parts))  # search a third of a part

        def cut(k):  # never an empty window, even for a part that is not there
            nominal = left + (k * width) // parts
            lo = tf.maximum(tf.minimum(tf.maximum(nominal - reach, left + 1), right - 1), left)
            hi = tf.maximum(tf.minimum(nominal + reach + 1, right), lo + 1)
            return lo + tf.cast(tf.argmin(profile[lo:hi]), tf.int32)

        ks = tf.range(1, MAX_PARTS)
        inner = tf.map_fn(cut, ks, fn_output_signature=tf.int32)
        inner = tf.where(ks < parts, inner, right)
        bounds = tf.concat([[left], inner, [right]], 0)
        starts, stops = bounds[:-1], bounds[1:]
        real = stops > starts
        ink = tf.map_fn(
            lambda b: tf.reduce_sum(profile[b[0] : b[1]]),
            tf.stack([starts, stops], 1),
            fn_output_signature=tf.float32,
        )
        wide_enough = tf.cast(stops - starts, tf.float32) >= PART_WIDTH * tf.cast(
            height, tf.float32
        )
        inky_enough = ink >= PART_INK * total / tf.cast(parts, tf.float32)
        thin = tf.gather(profile, tf.minimum(inner, tf.size(profile) - 1)) <= CUT_INK * median
        fair = tf.reduce_all(~real | (wide_enough & inky_enough)) & tf.reduce_all(
            (ks >= parts) | thin
        )
        return bounds, fair | (parts == 1)

    def fewer(parts, _):
        return parts - 1, bounds_for(parts - 1)

    first = bounds_for(parts)
    _, (bounds, _) = tf.while_loop(
        lambda parts, found: ~found[1],
        fewer,
        (parts, first),
        maximum_iterations=MAX_PARTS,
    )
    return bounds
