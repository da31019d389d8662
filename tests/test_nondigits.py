"""relunet.data.nondigits and its stroke shapes (relunet.data.strokes): what training
adds to a batch as "not a digit", made from random numbers and the batch's digits."""

from __future__ import annotations

import numpy as np
import pytest
import tensorflow as tf
from scipy import ndimage

from relunet.data import nondigits, strokes
from relunet.imaging.measure import centre_of_mass

KEY = tf.constant([3, 14], tf.int64)


@pytest.fixture(scope="module")
def letters():
    from relunet.data.glyphs import drawn_glyphs

    return drawn_glyphs(KEY, 1)[::5]


@pytest.fixture(scope="module")
def digits(mnist_dir):
    from relunet.data import idx

    return tf.constant(idx.read_folder(mnist_dir).splits["test"].images[:64])


def _drawn_as_vectors(start, end, used, width):
    """strokes.draw as first written: points and segments as [..., 2] vectors."""
    grid = tf.stack(tf.meshgrid(tf.range(28, dtype=tf.float32), tf.range(28, dtype=tf.float32)), -1)
    p = grid[None, None] + 0.5
    a, b = start[:, :, None, None, :], end[:, :, None, None, :]
    ab = b - a
    along = tf.reduce_sum((p - a) * ab, -1) / tf.maximum(tf.reduce_sum(ab * ab, -1), 1e-6)
    nearest = a + tf.clip_by_value(along, 0.0, 1.0)[..., None] * ab
    distance = tf.where(used[:, :, None, None], tf.norm(p - nearest, axis=-1), 1e3)
    return tf.clip_by_value(width + 0.5 - tf.reduce_min(distance, 1), 0.0, 1.0)


def test_strokes_drawn_in_x_and_y_apart_are_the_vector_form_s_pixels():
    """draw works x and y apart (a quarter of the cost): not one pixel differs from the
    vector form, on every kind of shape, moved and scaled about the box."""
    for i in range(3):
        key = tf.random.experimental.stateless_fold_in(KEY, i)
        start, end, used = strokes.segments(256, key)
        start, end = start * (1.0 + 0.3 * i) + 2.0 * i, end * (1.0 + 0.3 * i) + 2.0 * i
        width = tf.random.stateless_uniform([256, 1, 1], key, *strokes.PEN)
        drawn = strokes.draw(start, end, used, width).numpy()
        assert np.array_equal(drawn, _drawn_as_vectors(start, end, used, width).numpy())
        assert (drawn.max((1, 2)) > 0.5).mean() > 0.9  # strokes on the page, not off it


def test_glyphs_drawn_only_as_deep_as_their_strokes_are_the_pixels_of_all_64(monkeypatch):
    """Glyphs are drawn in chunks of like stroke counts, each only as many strokes deep as
    it needs: not one pixel differs from drawing every glyph with all MAX_STROKES slots."""
    from relunet.data import glyphs

    table, used, chars = glyphs.stroke_table()
    monkeypatch.setattr(glyphs, "stroke_table", lambda: (table[::6], used[::6], chars[::6]))
    trimmed = glyphs.drawn_glyphs(KEY, 2).numpy()

    def every_slot(used):  # as before the trim: all MAX_STROKES slots, in table order
        return np.full(used.shape[0], glyphs.MAX_STROKES)

    monkeypatch.setattr(glyphs, "strokes_drawn", every_slot)
    assert np.array_equal(trimmed, glyphs.drawn_glyphs(KEY, 2).numpy())
    assert trimmed.shape == (2 * len(chars[::6]), 28, 28) and (trimmed.max((1, 2)) > 0.5).all()


def test_the_shapes_are_a_function_of_their_key_alone(digits, letters):
    made = nondigits.non_digits(digits, 48, KEY, letters).numpy()
    assert made.shape == (48, 28, 28, 1) and made.dtype == np.uint8
    assert np.array_equal(made, nondigits.non_digits(digits, 48, KEY, letters).numpy())
    other = tf.random.experimental.stateless_fold_in(KEY, 1)
    assert not np.array_equal(made, nondigits.non_digits(digits, 48, other, letters).numpy())


def test_every_shape_has_ink_and_its_centre_of_mass_in_the_middle(digits, letters):
    made = tf.cast(nondigits.non_digits(digits, 96, KEY, letters)[..., 0], tf.float32)
    assert (tf.reduce_max(made, [1, 2]).numpy() > 128).all()
    row, col = (t.numpy() for t in centre_of_mass(made))
    assert np.abs(row - 13.5).max() <= 1.0 and np.abs(col - 13.5).max() <= 1.0


@pytest.mark.parametrize("name", strokes.SHAPES)
def test_each_stroke_shape_is_drawn_and_none_is_one_thin_stroke_but_a_grid_s_stand_in(name):
    start, end, used = strokes.segments(64, KEY, only=name)
    assert used.numpy().any(1).all(), name
    if name == "grid":  # what stands in for a thin shape is never thin
        assert not strokes._thin(start, end, used).numpy().any()


def test_a_thin_shape_is_replaced_by_a_grid():
    """Some random shapes come out thin (a polyline's points nearly in line); none of what
    strokes draws keeps one: its ink spreads both ways."""
    start, end, used = strokes.segments(512, KEY)
    assert strokes._thin(start, end, used).numpy().any()
    drawn = strokes.strokes(512, KEY).numpy()
    for image in drawn:
        rows, cols = np.nonzero(image > 0.5)
        assert np.ptp(rows) >= 2 and np.ptp(cols) >= 2


def test_fusions_and_pairs_are_made_of_two_digits(digits):
    x = tf.cast(digits[:8, ..., 0], tf.float32) / 255.0
    assert nondigits.pairs(x, x).shape == (8, 28, 40)
    fused = nondigits.fusions(x, x[::-1], KEY).numpy()
    assert (fused >= x.numpy()).all() and (fused > x.numpy()).any(axis=(1, 2)).all()


def _correlation(a: np.ndarray, b: np.ndarray) -> float:
    return float(np.corrcoef(a.ravel().astype(float), b.ravel().astype(float))[0, 1])


def test_the_lattice_and_the_stroke_count_are_not_read_from_the_same_random_bits():
    """Two draws from one key read the same bits: the lattice's points were once the
    stroke counts' bits again (a point = (count - 3) mod 3, along the flat order)."""
    _, shared = strokes.draws(4000, KEY)
    many, lattice = shared.many.numpy().ravel(), shared.lattice.numpy().ravel()[:4000]
    assert abs(_correlation(many % 3, lattice)) < 0.1


def test_a_fusion_moves_its_second_digit_within_its_ranges():
    dot = np.zeros((2000, 28, 28), np.float32)
    dot[:, 13, 13] = 1.0  # a one-pixel digit, rolled by the fusion's shift and drop
    moved = nondigits.fusions(tf.zeros_like(dot), tf.constant(dot), KEY).numpy()
    assert all(ndimage.label(m)[1] == 1 for m in moved[:50])
    rows, cols = np.nonzero(moved)[1:]
    assert set(np.unique(np.abs(cols - 13))) == set(range(*nondigits.FUSION_SHIFT))
    assert set(np.unique(rows - 13)) == set(range(*nondigits.FUSION_DROP))
    assert 0.4 < np.mean(cols < 13) < 0.6  # left or right alike
