"""The training distortions: what each does to a digit, and that they are a function of
(seed, epoch, step) alone, so a resumed run distorts what an uninterrupted one would."""

import dataclasses

import numpy as np
import pytest
import tensorflow as tf

from relunet import data
from relunet.base.errors import RelunetError
from relunet.config import AugmentConfig, TrainConfig
from relunet.data import PipelineConfig as P
from relunet.data.augment import batch_key, distort

ONLY = dict(  # every distortion off: a test turns one on
    augment=1.0,
    rotation=0.0,
    scale=0.0,
    aspect=0.0,
    shear=0.0,
    translate=0.0,
    elastic_alpha=0.0,
    thickness=0.0,
)


def _bar(n=8):
    """n images of a vertical bar, 4 pixels wide, in the middle of 28x28."""
    images = np.zeros((n, 28, 28, 1), np.uint8)
    images[:, 6:22, 12:16] = 255
    return tf.constant(images)


def _arrays(n=300, seed=0):
    rng = np.random.default_rng(seed)
    return data.Arrays(
        tf.constant(rng.integers(0, 256, (n, 28, 28, 1), np.uint8)),
        tf.constant(rng.integers(0, 10, n, np.int32)),
    )


def test_the_same_key_distorts_alike_and_another_key_otherwise():
    config = AugmentConfig(augment=1.0)
    key = batch_key(7, 2, 5)
    first, again = (distort(_bar(), key, config).numpy() for _ in range(2))
    np.testing.assert_array_equal(first, again)
    assert not np.array_equal(first, distort(_bar(), batch_key(7, 2, 6), config).numpy())
    assert not np.array_equal(first[0], first[1])  # each image its own draw


def test_an_image_not_chosen_is_left_exactly_as_it_was():
    images = _bar(64)
    np.testing.assert_array_equal(
        distort(images, batch_key(1, 0, 0), AugmentConfig(augment=1e-9)).numpy(), images
    )
    half = distort(images, batch_key(1, 0, 0), AugmentConfig(augment=0.5)).numpy()
    changed = [not np.array_equal(a, b) for a, b in zip(half, images.numpy(), strict=True)]
    assert 16 < sum(changed) < 48


def test_rotation_turns_a_vertical_bar():
    config = AugmentConfig(**{**ONLY, "rotation": 45.0})
    out = distort(_bar(32), batch_key(3, 0, 0), config).numpy()[..., 0].astype(float)
    rows, cols = np.indices((28, 28))

    def slant(image):  # the bar's covariance of row and column: 0 when upright
        mass = image / image.sum()
        r, c = (mass * rows).sum(), (mass * cols).sum()
        return (mass * (rows - r) * (cols - c)).sum()

    assert max(abs(slant(image)) for image in out) > 5
    assert abs(slant(_bar(1).numpy()[0, ..., 0].astype(float))) < 1e-9


def test_thickness_thickens_and_thins_strokes():
    config = AugmentConfig(**{**ONLY, "thickness": 1.0})
    out = distort(_bar(64), batch_key(4, 0, 0), config).numpy()
    ink = out.astype(float).sum(axis=(1, 2, 3)) / _bar(1).numpy().astype(float).sum()
    assert ink.max() > 1.2 and ink.min() < 0.8


def test_translation_moves_the_digit_without_changing_it_much():
    config = AugmentConfig(**{**ONLY, "translate": 3.0})
    out = distort(_bar(16), batch_key(5, 0, 0), config).numpy()[..., 0].astype(float)
    cols = np.arange(28)
    centres = (out.sum(1) * cols).sum(1) / out.sum((1, 2))
    assert np.abs(centres - 13.5).max() > 1 and np.abs(centres - 13.5).max() <= 3.01


def test_elastic_distortion_warps_but_keeps_the_ink():
    config = AugmentConfig(**{**ONLY, "elastic_alpha": 34.0, "elastic_sigma": 4.0})
    images = _bar(8)
    out = distort(images, batch_key(6, 0, 0), config).numpy().astype(float)
    assert not np.array_equal(out, images.numpy())
    ratio = out.sum((1, 2, 3)) / images.numpy().astype(float).sum((1, 2, 3))
    assert np.all((ratio > 0.5) & (ratio < 1.6))


def test_a_pipeline_s_distortions_are_a_function_of_seed_epoch_and_step():
    arrays, config = _arrays(), AugmentConfig(augment=0.75)

    def images(batches):
        return [b[0].numpy() for b in batches]

    whole = images(data.training_pipeline(arrays, P(batch_size=64, seed=7, augment=config)))
    np.testing.assert_array_equal(
        np.concatenate(whole),
        np.concatenate(
            images(data.training_pipeline(arrays, P(batch_size=64, seed=7, augment=config)))
        ),
    )
    rest = images(
        data.rest_of_epoch(arrays, P(batch_size=64, seed=7, augment=config), epoch=0, skip=2)
    )
    np.testing.assert_array_equal(np.concatenate(rest), np.concatenate(whole[2:]))
    plain = images(data.training_pipeline(arrays, P(batch_size=64, seed=7)))
    assert not np.array_equal(whole[0], plain[0])
    off = images(data.training_pipeline(arrays, P(batch_size=64, seed=7, augment=AugmentConfig())))
    np.testing.assert_array_equal(np.concatenate(off), np.concatenate(plain))  # --augment 0


def test_a_strength_without_augment_is_refused_as_changing_nothing():
    with pytest.raises(RelunetError, match="rotation shapes the distortions of --augment"):
        TrainConfig(rotation=30.0).validate()
    with pytest.raises(RelunetError, match="augment must lie in"):
        TrainConfig(augment=1.5).validate()
    assert TrainConfig(augment=0.5, rotation=30.0).validate()
    # An option added with its default leaves the fingerprint of earlier runs alone.
    assert TrainConfig().fingerprint() == dataclasses.replace(TrainConfig()).fingerprint()
