"""MNIST-style data as `tf.data` pipelines: tfds.load, a compact in-memory cache, batches.

The pipeline, in order:
  load     `tfds.load` of any split string ("train[:90%]", "test[:2000]", ...);
  cache    the split decoded once into memory as uint8 images and int32 labels
           (47 MB for MNIST's 60,000 training images, a quarter of a float32 cache);
  shuffle  a fresh permutation every epoch, a pure function of (seed, epoch), so a
           resumed run sees the same order as an uninterrupted one;
  batch    one gather per batch of indices;
  map      normalise after batching: pixels to float32 in [0, 1], labels one-hot (as
           the lab does), optionally label-smoothed;
  prefetch overlap with training.
Working on whole batches instead of single examples is what lets this pipeline feed
training many times faster than it consumes.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import tensorflow as tf
import tensorflow_datasets as tfds

from relunet import idx
from relunet.config import check_split
from relunet.errors import RelunetError
from relunet.sources import Source, default_tfds_dir, find_source  # noqa: F401  (public here)

NUM_CLASSES = idx.NUM_CLASSES
AUTOTUNE = tf.data.AUTOTUNE
_EPOCHS_FOREVER = 2**40  # the training pipeline runs until fit() stops asking


def load_tfds(source: Source, splits: list[str]) -> list[tf.data.Dataset]:
    """`tfds.load` each split as (uint8 image [28, 28, 1], int64 label) pairs."""
    return [_load_split(source, check_split(split)) for split in splits]


def _load_split(source: Source, split: str) -> tf.data.Dataset:
    try:
        dataset = tfds.load(source.name, split=split, data_dir=source.tfds_dir,
                            as_supervised=True, download=False, shuffle_files=False)
    except (ValueError, AssertionError) as error:
        if "corresponds to no data" in str(error):
            raise RelunetError(f"The split {split!r} of {source.name} holds no examples.") from None
        raise RelunetError(f"tfds cannot read the split {split!r} of {source.name}: {error}") from None
    if int(dataset.cardinality()) == 0:
        raise RelunetError(f"The split {split!r} of {source.name} holds no examples.")
    return dataset


@dataclass
class Arrays:
    """One split held in memory: the pipeline's compact cache."""

    images: tf.Tensor  # uint8 [n, 28, 28, 1]
    labels: tf.Tensor  # int32 [n]

    def __len__(self) -> int:
        return int(self.labels.shape[0])


def load_arrays(dataset: tf.data.Dataset) -> Arrays:
    """Decode a (uint8 image, label) dataset once into memory."""
    images, labels = dataset.batch(max(1, int(dataset.cardinality()))).get_single_element()
    return Arrays(images, tf.cast(labels, tf.int32))


def steps_per_epoch(arrays: Arrays, batch_size: int) -> int:
    """Batches in one pass over the split; the last one may be smaller."""
    return math.ceil(len(arrays) / batch_size)


def training_pipeline(arrays: Arrays, batch_size: int, seed: int, first_epoch: int = 0,
                      label_smoothing: float = 0.0) -> tf.data.Dataset:
    """Shuffled batches of normalised images and one-hot labels, epoch after epoch.

    The dataset does not end: pass `steps_per_epoch(arrays, batch_size)` to `fit`. Each
    epoch's order depends only on `seed` and the epoch number, so starting at
    `first_epoch` reproduces what an uninterrupted run would see from there.
    """
    n, steps = len(arrays), steps_per_epoch(arrays, batch_size)
    seed = tf.constant(seed, tf.int64)

    def epoch_batches(epoch: tf.Tensor) -> tf.data.Dataset:
        order = tf.random.experimental.stateless_shuffle(tf.range(n), seed=tf.stack([seed, epoch]))
        return tf.data.Dataset.range(steps).map(
            lambda step: order[step * batch_size:(step + 1) * batch_size])

    return (
        tf.data.Dataset.range(first_epoch, _EPOCHS_FOREVER)
        .flat_map(epoch_batches)
        .map(lambda indices: _batch(arrays, indices, label_smoothing), num_parallel_calls=AUTOTUNE)
        .prefetch(AUTOTUNE)
    )


def evaluation_pipeline(arrays: Arrays, batch_size: int) -> tf.data.Dataset:
    """Batches of normalised images and one-hot labels, once, in a fixed order."""
    n = len(arrays)
    return (
        tf.data.Dataset.range(steps_per_epoch(arrays, batch_size))
        .map(lambda step: _batch(arrays, tf.range(step * batch_size,
                                                  tf.minimum((step + 1) * batch_size, n))),
             num_parallel_calls=AUTOTUNE)
        .prefetch(AUTOTUNE)
    )


def normalize(images: tf.Tensor, labels: tf.Tensor,
              label_smoothing: float = 0.0) -> tuple[tf.Tensor, tf.Tensor]:
    """uint8 pixels to float32 in [0, 1] and labels to one-hot vectors, as the lab does."""
    one_hot = tf.one_hot(labels, NUM_CLASSES)
    if label_smoothing:
        one_hot = one_hot * (1.0 - label_smoothing) + label_smoothing / NUM_CLASSES
    return tf.cast(images, tf.float32) / 255.0, one_hot


def _batch(arrays: Arrays, indices: tf.Tensor,
           label_smoothing: float = 0.0) -> tuple[tf.Tensor, tf.Tensor]:
    return normalize(tf.gather(arrays.images, indices), tf.gather(arrays.labels, indices),
                     label_smoothing)
