"""The finder (relunet.training.finder): its targets and how its outputs are read back,
its train_step through the lab's grad, and saving it with its calibration."""

from __future__ import annotations

import numpy as np
import pytest
import tensorflow as tf

from relunet.base.mnist import DIGIT, MINUS, NOTHING, OTHER, POINT
from relunet.training.finder import FRAME, KINDS, Finder, centres_of, finder_loss, frame_targets


def _items(kinds: list[list[int]], centres: list[list[float]]) -> dict[str, tf.Tensor]:
    return {"kinds": tf.constant(kinds, tf.int32), "centres": tf.constant(centres, tf.float32)}


def test_what_the_finder_is_taught_is_what_its_outputs_are_read_back_as():
    """Targets made from a row's items, turned into sure logits and offsets, read back
    as the same items at the same centres (within a hundredth of a pixel)."""
    items = _items([[DIGIT, POINT, DIGIT, MINUS, NOTHING]], [[11.3, 20.0, 30.9, 44.5, -1.0]])
    target = frame_targets(items["kinds"], items["centres"], 32)
    logits = tf.one_hot(target["kinds"][0], KINDS) * 20.0
    centres, kinds, _ = centres_of(logits, target["offsets"][0])
    assert kinds.numpy().tolist() == [DIGIT, POINT, DIGIT, MINUS]
    assert centres.numpy() == pytest.approx([11.3, 20.0, 30.9, 44.5], abs=0.01)


def test_something_not_a_digit_is_called_so_only_from_its_calibrated_probability():
    """A frame most likely OTHER at p=0.6: OTHER under a threshold of 0.5, its next
    likeliest kind (a digit) under one of 0.7."""
    p = np.full((5, KINDS), 1e-3, np.float32)
    p[:, NOTHING] = 1.0
    p[2] = [0.01, 0.35, 0.6, 0.02, 0.02]
    logits, offsets = tf.math.log(tf.constant(p)), tf.zeros([5])
    assert centres_of(logits, offsets, 0.5)[1].numpy().tolist() == [OTHER]
    assert centres_of(logits, offsets, 0.7)[1].numpy().tolist() == [DIGIT]
    centre = centres_of(logits, offsets, 0.5)[0].numpy()[0]
    assert centre == pytest.approx(2.5 * FRAME)


def test_the_finder_learns_through_the_lab_s_grad_and_keeps_its_calibration(tmp_path):
    """A few steps of train_step on one batch of drawn rows lower its loss; saved and
    loaded (safe_mode), it answers alike and keeps `other_above`."""
    import keras

    rows = tf.random.stateless_uniform([4, 28, 64], [1, 2]) * tf.cast(
        tf.random.stateless_uniform([4, 28, 64], [3, 4]) > 0.9, tf.float32
    )
    items = _items([[DIGIT, DIGIT, NOTHING]] * 4, [[20.0, 40.0, -1.0]] * 4)
    finder = Finder(channels=(8, 8, 8, 8), other_above=0.37)
    finder.build()
    finder.compile(optimizer=keras.optimizers.Adam(3e-3))
    before = float(finder_loss(finder, rows, items))
    for _ in range(30):
        finder.train_step((rows, items))
    assert float(finder_loss(finder, rows, items)) < before
    path = tmp_path / "finder.keras"
    finder.save(path)
    loaded = keras.models.load_model(path, safe_mode=True)
    assert loaded.other_above == pytest.approx(0.37)
    assert np.allclose(loaded(rows)[0].numpy(), finder(rows)[0].numpy(), atol=1e-5)
