"""MNIST-style data as `tf.data` pipelines, from a split held in memory
(relunet.data.splits).

The pipeline, in order:
  shuffle  a fresh permutation every epoch, a pure function of (seed, epoch), so a
           resumed run sees the same order as an uninterrupted one;
  batch    one gather per batch of indices;
  map      distort (relunet.data.augment) and add shapes that are not digits
           (relunet.data.nondigits) where asked, then normalise after batching: pixels
           to float32 in [0, 1], labels one-hot (as the lab does), optionally smoothed;
  prefetch overlap with training.
Working on whole batches instead of single examples is what lets this pipeline feed
training many times faster than it consumes.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass

import keras
import tensorflow as tf

from relunet.base._compat import op_determinism_enabled
from relunet.base.errors import RelunetError
from relunet.base.mnist import NUM_CLASSES, PIXEL_MAX
from relunet.config import AugmentConfig, OptimConfig, take
from relunet.data.augment import batch_key, distort
from relunet.data.glyphs import run_glyphs
from relunet.data.nondigits import non_digits
from relunet.data.splits import Arrays

AUTOTUNE = tf.data.AUTOTUNE


def steps_per_epoch(arrays: Arrays, batch_size: int) -> int:
    """Batches in one pass over the split; the last one may be smaller."""
    return math.ceil(len(arrays) / batch_size)


class EpochCounter(keras.callbacks.Callback):
    """Which epoch each pass of a training pipeline is: the epoch `fit` is starting.

    A pass asks the counter for its epoch and moves it on by one, so without `fit`'s
    word the passes are epochs `first`, `first + 1`, ... Listed in `fit`'s callbacks,
    it is set to Keras's own epoch number as each epoch begins (Keras makes the epoch's
    iterator after `on_epoch_begin`), so a batch looked at before `fit` (a pass begun)
    changes nothing and `initial_epoch` is followed. Create it outside any
    `strategy.scope()`: the number lives in a variable.
    """

    def __init__(self, first: int = 0):
        super().__init__()
        with tf.init_scope():
            self.next = tf.Variable(first, dtype=tf.int64, trainable=False, name="next_epoch")

    def on_epoch_begin(self, epoch, logs=None):
        self.next.assign(epoch)

    def take(self) -> tf.Tensor:
        """The epoch of the pass starting now; the next pass gets the one after."""
        return self.next.assign_add(1) - 1


@dataclass(frozen=True, kw_only=True)
class PipelineConfig:
    """How a training pipeline serves a split: batches of `batch_size`, each epoch in an
    order drawn from `seed` and the epoch's number, labels smoothed by
    `label_smoothing`, images distorted as `augment` says (when its chance is above 0)."""

    batch_size: int
    seed: int
    label_smoothing: float = 0.0
    augment: AugmentConfig | None = None

    @classmethod
    def of(cls, config: OptimConfig, **overrides) -> PipelineConfig:
        """The pipeline a command's config asks for, its augmentation included where it
        has one; `overrides` (a trial's batch size, a run's seed) replace its values."""
        augment = take(AugmentConfig, config) if isinstance(config, AugmentConfig) else None
        values = dict(
            batch_size=config.batch_size,
            seed=config.seed,
            label_smoothing=config.label_smoothing,
            augment=augment,
        )
        return cls(**{**values, **overrides})


def training_pipeline(
    arrays: Arrays, config: PipelineConfig, *, counter: EpochCounter | None = None
) -> tf.data.Dataset:
    """Shuffled batches of normalised images and one-hot labels: one epoch per pass.

    Each pass over the dataset is exactly `steps_per_epoch(arrays, config.batch_size)`
    batches (the last one may be smaller), so `fit` needs no `steps_per_epoch` and trains
    exactly that many steps an epoch whatever its `steps_per_execution`. Each epoch's
    order depends only on the seed and the epoch number, so a resumed run sees what an
    uninterrupted one would. Which epoch a pass is: `counter` says (an EpochCounter,
    listed in `fit`'s callbacks too); without one, the passes count from epoch 0. With
    `config.augment` (its chance above 0), each batch's images are distorted by
    relunet.data.augment, its randomness a function of (seed, epoch, step).
    """
    if tf.distribute.has_strategy() and tf.distribute.in_cross_replica_context():
        raise RelunetError(
            "Create the training pipeline outside strategy.scope(); "
            "shard it with relunet.training.distribute.shard_by_data instead."
        )
    counter = counter or EpochCounter()
    return _epochs(arrays, config, counter.take, skip=0)


def rest_of_epoch(
    arrays: Arrays, config: PipelineConfig, *, epoch: int, skip: int
) -> tf.data.Dataset:
    """The batches of `epoch` that follow its first `skip`, for one pass: what is left of
    an epoch interrupted after `skip` steps, in the order (and with the distortions) the
    full epoch has them."""
    steps = steps_per_epoch(arrays, config.batch_size)
    if not 0 <= skip < steps:
        raise ValueError(f"skip must lie in [0, {steps}). Received: {skip}.")
    return _epochs(arrays, config, lambda: tf.constant(epoch, tf.int64), skip=skip)


def _epochs(
    arrays: Arrays, config: PipelineConfig, next_epoch: Callable[[], tf.Tensor], *, skip: int
) -> tf.data.Dataset:
    """Every pass: ask `next_epoch()` for the epoch number, then its batches from `skip`."""
    batch_size = config.batch_size
    n, steps = len(arrays), steps_per_epoch(arrays, batch_size)
    seed = tf.constant(config.seed, tf.int64)
    augment = config.augment if config.augment is not None and config.augment.augment else None

    def epoch_batches(epoch: tf.Tensor) -> tf.data.Dataset:
        order = tf.random.experimental.stateless_shuffle(tf.range(n), seed=tf.stack([seed, epoch]))
        return tf.data.Dataset.range(skip, steps).map(
            lambda step: (epoch, step, order[step * batch_size : (step + 1) * batch_size])
        )

    extra = round((config.augment.non_digits if config.augment else 0.0) * batch_size)
    letters = run_glyphs(config.seed) if extra else None  # drawn now, not in the trace

    def batch(epoch: tf.Tensor, step: tf.Tensor, indices: tf.Tensor):
        images = tf.gather(arrays.images, indices)
        if augment is not None:
            images = distort(images, batch_key(seed, epoch, step), augment)
        images, labels = normalize(
            images, tf.gather(arrays.labels, indices), config.label_smoothing
        )
        if not extra:
            return images, labels
        # Shapes that are not digits, labelled with no class (relunet.data.nondigits).
        key = tf.random.experimental.stateless_fold_in(batch_key(seed, epoch, step), 7)
        shapes = to_inputs(non_digits(tf.gather(arrays.images, indices), extra, key, letters))
        no_class = tf.fill([extra, NUM_CLASSES], 1.0 / NUM_CLASSES)
        return tf.concat([images, shapes], 0), tf.concat([labels, no_class], 0)

    return (
        tf.data.Dataset.range(1)
        .map(lambda _: next_epoch())
        .flat_map(epoch_batches)
        .map(batch, num_parallel_calls=_parallel_calls())
        # flat_map hides the length; Keras reads it to know where an epoch ends.
        .apply(tf.data.experimental.assert_cardinality(steps - skip))
        .prefetch(AUTOTUNE)
    )


def _parallel_calls() -> int | None:
    """AUTOTUNE, but one at a time under op determinism: there tf.data would rewrite a
    parallel map beside the pass counter to a sequential one anyway, and TensorFlow 2.21
    logs an error line ("NodeDef mentions attribute use_unbounded_threadpool") doing
    so."""
    return None if op_determinism_enabled() else AUTOTUNE


def evaluation_pipeline(arrays: Arrays, *, batch_size: int) -> tf.data.Dataset:
    """Batches of normalised images and one-hot labels, once, in a fixed order."""
    n = len(arrays)

    def batch(step: tf.Tensor) -> tuple[tf.Tensor, tf.Tensor]:
        indices = tf.range(step * batch_size, tf.minimum((step + 1) * batch_size, n))
        return normalize(tf.gather(arrays.images, indices), tf.gather(arrays.labels, indices))

    return (
        tf.data.Dataset.range(steps_per_epoch(arrays, batch_size))
        .map(batch, num_parallel_calls=AUTOTUNE)
        .prefetch(AUTOTUNE)
    )


def to_inputs(images: tf.Tensor) -> tf.Tensor:
    """uint8 pixels to the model's float32 inputs in [0, 1], as the lab does."""
    return tf.cast(images, tf.float32) / PIXEL_MAX


def normalize(
    images: tf.Tensor, labels: tf.Tensor, label_smoothing: float = 0.0
) -> tuple[tf.Tensor, tf.Tensor]:
    """uint8 pixels to float32 in [0, 1] and labels to one-hot vectors, as the lab does."""
    one_hot = tf.one_hot(labels, NUM_CLASSES)
    if label_smoothing:
        one_hot = one_hot * (1.0 - label_smoothing) + label_smoothing / NUM_CLASSES
    return to_inputs(images), one_hot
