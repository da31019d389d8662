"""The reading objective of a search (`relunet tune --objective reading`): how a trial's
model reads held-out digits distorted as written and photographed digits are, and how
often it answers "not a digit" for what is not one, made from MNIST's training split
only. (The package has no camera-photo generator: benchmarks/reading_sets.py photographs
MNIST's test digits, which a search must never see; the robust preset's distortions are
what relunet trains a reader with, and they are cheap and keyed by a seed.)

Made once per search from its seed, from the first PHOTOS digits of `--val-split` (held
out of the trials' training, and a slice of MNIST's training split: the config refuses
any other), so every trial and every epoch is scored on the very same images:

  photos      each digit distorted as `--preset robust` trains (relunet.data.augment at
              that preset's strengths, every digit distorted): rotated, scaled, sheared,
              moved, its strokes thickened or thinned;
  non-digits  NON_DIGITS shapes of relunet.data.nondigits made from the same digits:
              pen strokes, two digits drawn as one or side by side in one box, letters
              and symbols (each drawn one way, not the four ways a training run draws).

At each epoch's end the model answers all three sets at once. Its threshold is the one
`relunet train` calibrates (relunet.training.calibrate, on the clean digits: the
probability under which 0.8% of them fall, after temperature scaling), and

    reading = (photos read right and above the threshold + non-digits under it) / 2

both halves of what a reader asks of the model, weighted alike: reading digits alone
rewards a model sure of everything, rejecting alone one unsure of everything. The two
halves are logged too (`photos_read`, `non_digits_rejected`).
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass

import keras
import numpy as np
import tensorflow as tf
from scipy.special import softmax

from relunet import data
from relunet.config import PRESETS, AugmentConfig, TrainConfig, take
from relunet.data.augment import distort
from relunet.data.glyphs import drawn_glyphs
from relunet.data.nondigits import non_digits
from relunet.training.calibrate import calibration

PHOTOS = 1000  # held-out digits, each scored clean (the threshold) and as a photo
# Shapes that are not digits, made CHUNK at a time: made eagerly all at once, 500 kept
# 200 MB more resident memory for good; 100 at a time, about 80 MB.
NON_DIGITS = 500
CHUNK = 100
KEY = 0x4EAD  # the reading set's stream of random numbers, beside the search's seed
# --preset robust's distortions, applied to every digit.
PHOTO_DISTORTIONS = dataclasses.replace(
    take(AugmentConfig, TrainConfig(**PRESETS["robust"])), augment=1.0
)


@dataclass(frozen=True)
class ReadingSet:
    """The images a search scores reading on: model inputs, float32 in [0, 1]."""

    digits: tf.Tensor  # [n, 28, 28, 1], clean
    photos: tf.Tensor  # [n, 28, 28, 1], the same digits as photos
    labels: np.ndarray  # [n]
    non_digits: tf.Tensor  # [NON_DIGITS, 28, 28, 1]


def reading_set(validation: data.Arrays, seed: int) -> ReadingSet:
    """The search's reading set, from the first PHOTOS digits of its validation split,
    a function of `seed` alone."""
    n = min(len(validation), PHOTOS)
    digits = validation.images[:n]
    photos_key, letters_key, *shapes_keys = tf.unstack(
        tf.random.experimental.stateless_split(
            tf.constant([seed, KEY], tf.int64), num=2 + NON_DIGITS // CHUNK
        )
    )
    photos = distort(digits, photos_key, PHOTO_DISTORTIONS)
    letters = drawn_glyphs(letters_key, 1)  # each letter and symbol drawn one way
    shapes = tf.concat([non_digits(digits, CHUNK, key, letters) for key in shapes_keys], 0)
    return ReadingSet(
        digits=data.to_inputs(digits),
        photos=data.to_inputs(photos),
        labels=np.asarray(validation.labels[:n]),
        non_digits=data.to_inputs(shapes),
    )


def reading_scores(model: keras.Model, reading: ReadingSet) -> dict[str, float]:
    """reading, photos_read and non_digits_rejected of `model` (as the module says)."""
    inputs = tf.concat([reading.digits, reading.photos, reading.non_digits], 0)
    logits = keras.ops.convert_to_numpy(model(inputs, training=False)).astype(np.float64)
    if not np.isfinite(logits).all():  # a diverged model: its trial has failed
        return dict.fromkeys(("reading", "photos_read", "non_digits_rejected"), float("nan"))
    n = len(reading.labels)
    clean, photos, shapes = logits[:n], logits[n : 2 * n], logits[2 * n :]
    found = calibration(clean, reading.labels)
    sure = softmax(photos / found.temperature, axis=-1)
    read = (sure.argmax(-1) == reading.labels) & (sure.max(-1) >= found.reject_below)
    unsure = softmax(shapes / found.temperature, axis=-1).max(-1) < found.reject_below
    photos_read, rejected = float(read.mean()), float(unsure.mean())
    return {
        "reading": (photos_read + rejected) / 2,
        "photos_read": photos_read,
        "non_digits_rejected": rejected,
    }


class ReadingScore(keras.callbacks.Callback):
    """Add the reading scores to each epoch's logs; listed first, so that EarlyStopping,
    keras-tuner's checkpoint and the trial's records see them."""

    def __init__(self, reading: ReadingSet):
        super().__init__()
        self.reading = reading

    def on_epoch_end(self, epoch, logs=None):
        if logs is not None:
            logs.update(reading_scores(self.model, self.reading))
