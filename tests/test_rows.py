"""Rows of writing: the finder's input made from a page (relunet.imaging.rows), and the
rows training draws from MNIST's training digits (relunet.data.rows), made by that very
function; without a trained model."""

from __future__ import annotations

import numpy as np
import pytest
import tensorflow as tf

from relunet.base.mnist import DIGIT, MINUS, NOTHING, OTHER, POINT
from relunet.imaging.rows import GAP, INK_HEIGHT, MARGIN, ROW_HEIGHT, row_images


def _page(blocks: list[tuple[int, int, int, int]], shape=(120, 600)) -> np.ndarray:
    page = np.zeros(shape, np.float32)
    for top, left, bottom, right in blocks:
        page[top:bottom, left:right] = 1.0
    return page


def test_a_row_is_the_ink_twenty_pixels_tall_and_far_gaps_come_closer():
    """Two blocks 60 px tall, 300 px apart: the row's ink is 20 px tall in 28, the gap
    between them shortened to GAP of the ink's height, and each block's columns map back
    to the page's."""
    page = _page([(30, 40, 90, 70), (30, 400, 90, 430)])
    rows, mapping = row_images(tf.constant(page[None]))
    row = rows[0].numpy()
    assert row.shape[0] == ROW_HEIGHT
    inked_rows = np.flatnonzero(row.max(1) > 0.5)
    assert inked_rows[-1] - inked_rows[0] + 1 == pytest.approx(INK_HEIGHT, abs=1)
    inked = np.flatnonzero(row.max(0) > 0.5)
    runs = np.split(inked, np.flatnonzero(np.diff(inked) > 1) + 1)
    assert len(runs) == 2
    gap = runs[1][0] - runs[0][-1] - 1
    assert gap == pytest.approx(GAP * INK_HEIGHT, abs=1.5)  # 300 px of paper -> 6
    assert runs[0][0] == pytest.approx(MARGIN, abs=1)
    back = mapping.page_columns(tf.constant([[float(runs[0][0]), float(runs[1][-1])]]))
    assert back.numpy()[0] == pytest.approx([40, 429], abs=3)
    there = mapping.row_columns(tf.constant([[55.0, 415.0]])).numpy()[0]
    assert there == pytest.approx([runs[0].mean(), runs[1].mean()], abs=1.5)


def test_a_large_page_is_shrunk_smoothly_first_and_maps_back_the_same():
    """A page whose ink is 400 px tall is shrunk (antialiased) before it is sampled; the
    columns still map back to the page's own."""
    page = _page([(100, 100, 500, 300), (100, 420, 500, 470)], shape=(600, 700))
    rows, mapping = row_images(tf.constant(page[None]))
    assert float(mapping.factor[0]) < 1.0
    row = rows[0].numpy()
    inked = np.flatnonzero(row.max(0) > 0.5)
    back = mapping.page_columns(tf.constant([[float(inked[0]), float(inked[-1])]])).numpy()[0]
    assert back == pytest.approx([100, 469], abs=8)


def test_a_row_wider_than_asked_is_scaled_down_to_fit():
    page = _page([(10, 10, 30, 400)], shape=(40, 420))
    rows, _ = row_images(tf.constant(page[None]), width=64)
    assert rows.shape == (1, ROW_HEIGHT, 64)
    inked = np.flatnonzero(rows[0].numpy().max(0) > 0.5)
    assert inked[-1] < 64 - MARGIN + 1


@pytest.fixture(scope="module")
def drawn(mnist_dir):
    from relunet.data import idx
    from relunet.data.rows import draw_rows, not_digits

    train = idx.read_folder(str(mnist_dir)).splits["train"]
    digits = tf.constant(train.images[:2000])
    labels = tf.constant(train.labels[:2000].astype(np.int32))
    shapes = not_digits(3)[::7]  # a few of each kind suffice here
    key = tf.constant([5, 6], tf.int64)
    return draw_rows(key, digits, labels, shapes, 48, 192), (key, digits, labels, shapes)


def test_training_rows_are_a_function_of_their_key(drawn):
    from relunet.data.rows import draw_rows

    rows, (key, digits, labels, shapes) = drawn
    again = draw_rows(key, digits, labels, shapes, 48, 192)
    assert np.array_equal(rows.images.numpy(), again.images.numpy())
    other = draw_rows(key + 1, digits, labels, shapes, 48, 192)
    assert not np.array_equal(rows.images.numpy(), other.images.numpy())


def test_every_item_of_a_training_row_is_inked_at_its_centre_left_to_right(drawn):
    """Each item's centre column has ink within 3 px (ink it drew: digits, letters,
    points and dashes); centres rise left to right; kinds hold digits' classes."""
    rows, _ = drawn
    images, kinds = rows.images.numpy(), rows.kinds.numpy()
    labels, centres = rows.labels.numpy(), rows.centres.numpy()
    seen = set()
    for image, kind, label, centre in zip(images, kinds, labels, centres, strict=True):
        used = kind != NOTHING
        assert used[0] and not used[np.argmin(used)] if not used.all() else True
        inked = image.max(0) > 0.2
        for k, lab, c in zip(kind[used], label[used], centre[used], strict=True):
            seen.add(int(k))
            near = inked[max(0, int(c) - 3) : int(c) + 4]
            assert near.any(), (k, c)
            assert (0 <= lab <= 9) == (k == DIGIT)
        assert np.all(np.diff(centre[used]) > -4)  # left to right, give or take a lean
    assert {DIGIT, OTHER} <= seen
    assert seen <= {DIGIT, OTHER, POINT, MINUS}


def _whole_canvas_drawing(items, transforms, rows_of_items, b):
    """relunet.data.rows._drawn_onto as it was: every item drawn onto the whole canvas."""
    from relunet.data.rows import CANVAS

    drawn = tf.raw_ops.ImageProjectiveTransformV3(
        images=items[..., None],
        transforms=transforms,
        output_shape=list(CANVAS),
        interpolation="BILINEAR",
        fill_mode="CONSTANT",
        fill_value=0.0,
    )[..., 0]
    return tf.maximum(tf.math.unsorted_segment_max(drawn, rows_of_items, b), 0.0)


def _whole_canvas_discs(ys, xs, value, shape):
    """relunet.data.blemishes._discs as it was: each disc's value on every pixel."""
    rows = tf.range(shape[1], dtype=tf.float32)[None, None, :, None]
    cols = tf.range(shape[2], dtype=tf.float32)[None, None, None, :]
    distance = tf.sqrt((rows - ys[..., None, None]) ** 2 + (cols - xs[..., None, None]) ** 2)
    return tf.reduce_max(value(distance), 1)


def test_rows_drawn_only_where_their_ink_reaches_are_the_whole_canvas_s_pixels(drawn, monkeypatch):
    """Items drawn as far right as their ink reaches, breaks and specks worked out around
    their centres: the very pixels of drawing everything on the whole canvas, on rows
    of every spacing, stretched letters, breaks at the canvas's edges."""
    from relunet.data import blemishes, rows

    _, (_, digits, labels, shapes) = drawn
    keys = [tf.constant([seed, 11], tf.int64) for seed in range(3)]
    fast = [rows.draw_rows(key, digits, labels, shapes, 64, 192) for key in keys]
    monkeypatch.setattr(rows, "_drawn_onto", _whole_canvas_drawing)
    monkeypatch.setattr(blemishes, "_discs", _whole_canvas_discs)
    for key, ours in zip(keys, fast, strict=True):
        whole = rows.draw_rows(key, digits, labels, shapes, 64, 192)
        for name, value in ours._asdict().items():
            assert np.array_equal(value.numpy(), getattr(whole, name).numpy()), name
