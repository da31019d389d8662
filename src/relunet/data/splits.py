"""A split of a prepared dataset, held in memory: `tfds.load` of any split string
("train[:90%]", "test[:2000]", ...), decoded once into uint8 images and int32 labels
(47 MB for MNIST's 60,000 training images, a quarter of a float32 cache), kept on disk
beside the prepared copy so that decoding tfds's PNG records is paid once."""

from __future__ import annotations

import os
import urllib.parse
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import tensorflow as tf

from relunet.base.errors import RelunetError
from relunet.base.files import TMP_PREFIX, read_json, sha256_file, write_json_atomic
from relunet.base.values import check_split
from relunet.config import NO_SPLIT, DataConfig
from relunet.data.prepare import find_source
from relunet.data.sources import Source


def load_tfds(source: Source, splits: list[str]) -> list[tf.data.Dataset]:
    """`tfds.load` each split as (uint8 image [28, 28, 1], int64 label) pairs."""
    return [_load_split(source, check_split(split)) for split in splits]


def _load_split(source: Source, split: str) -> tf.data.Dataset:
    import tensorflow_datasets as tfds  # only here: decoding a split the first time

    try:
        dataset = tfds.load(
            source.name,
            split=split,
            data_dir=source.tfds_dir,
            as_supervised=True,
            download=False,
            shuffle_files=False,
        )
    except (ValueError, AssertionError) as error:
        if "corresponds to no data" in str(error):
            raise RelunetError(f"The split {split!r} of {source.name} holds no examples.") from None
        raise RelunetError(
            f"tfds cannot read the split {split!r} of {source.name}: {error}"
        ) from None
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


def split_arrays(source: Source, split: str) -> Arrays:
    """A split of a prepared dataset in memory, from the on-disk cache of its decoded
    arrays when it has one: decoding tfds's PNG records again costs seconds.

    The cache lives beside the prepared copy, `<version>/relunet_cache/<split>.npz`, keyed
    by dataset, version and split; a sidecar records the sha256 of the file and of the
    copy's dataset_info.json, so a damaged cache or a copy prepared again is rebuilt.
    """
    check_split(split)
    prepared = source.prepared_dir
    if prepared is None:  # tfds's mock data in tests, or a copy being made
        return load_arrays(_load_split(source, split))
    path = prepared / "relunet_cache" / f"{urllib.parse.quote(split, safe='')}.npz"
    key = {"dataset_info_sha256": _sha256_or_none(prepared / "dataset_info.json")}
    cached = _read_cache(path, key)
    if cached is not None:
        return cached
    arrays = load_arrays(_load_split(source, split))
    _write_cache(path, key, arrays)
    return arrays


def _read_cache(path: Path, key: dict[str, str]) -> Arrays | None:
    try:
        record = read_json(path.with_suffix(".json"), expect=dict)
    except RelunetError:
        return None
    if any(record.get(k) != v for k, v in key.items()) or record.get("sha256") != _sha256_or_none(
        path
    ):
        return None
    with np.load(path, allow_pickle=False) as stored:
        return Arrays(tf.constant(stored["images"]), tf.constant(stored["labels"]))


def _write_cache(path: Path, key: dict[str, str], arrays: Arrays) -> None:
    """Write the cache atomically; a cache that cannot be written is only a missed speed-up."""
    tmp = path.with_name(f"{TMP_PREFIX}{os.getpid()}-{path.name}")
    try:
        path.parent.mkdir(exist_ok=True)
        with open(tmp, "wb") as f:
            np.savez(f, images=arrays.images.numpy(), labels=arrays.labels.numpy())
        os.replace(tmp, path)
        write_json_atomic(path.with_suffix(".json"), {**key, "sha256": sha256_file(path)})
    except OSError:
        tmp.unlink(missing_ok=True)


def _sha256_or_none(path: Path) -> str | None:
    try:
        return sha256_file(path)
    except OSError:
        return None


@dataclass
class Splits:
    """A run's splits, decoded into memory once; `val` is None without a validation split."""

    train: Arrays
    val: Arrays | None
    test: Arrays
    source: Source


def load_splits(config: DataConfig) -> Splits:
    """Find the dataset (offline first) and hold its train, validation and test splits."""
    source = find_source(config.dataset, config.data_dir, config.tfds_dir)
    validate = config.val_split != NO_SPLIT
    names = [config.train_split, config.test_split] + ([config.val_split] if validate else [])
    train, test, *val = (split_arrays(source, name) for name in names)
    return Splits(train, val[0] if val else None, test, source)
