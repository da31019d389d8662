"""Training configuration: one dataclass, one default per field, validated at the edge.

This module imports no TensorFlow, so the command line can check flags in a few
milliseconds before paying for the TensorFlow import.
"""

from __future__ import annotations

import dataclasses
import math
import re
import time
from dataclasses import dataclass
from typing import Any

from relunet.errors import RelunetError

DATASETS = ("mnist", "fashion_mnist", "kmnist")
ACTIVATIONS = ("relu", "sigmoid", "leaky_relu")
INITS = ("random_normal", "he_normal", "glorot_uniform")

# One tfds split: a name with an optional [start:end] slice in examples or percent,
# e.g. "train", "train[:2000]", "train[90%:]", "test[-1000:]". Splits join with "+".
_SLICE_BOUND = r"-?\d+%?"
_ONE_SPLIT = rf"[a-z]+(\[(?:{_SLICE_BOUND})?:(?:{_SLICE_BOUND})?\])?"
_SPLIT_RE = re.compile(rf"^{_ONE_SPLIT}(\+{_ONE_SPLIT})*$")
_SPLIT_NAMES = ("train", "test")  # MNIST-style datasets have no validation split.

# Fields that change what is trained. A run directory may only be resumed by a config
# that agrees on all of them; the others (where the data lives, how chatty) may differ.
_LOCATION_FIELDS = ("run_dir", "data_dir", "tfds_dir", "verbose")


@dataclass
class TrainConfig:
    """Everything `relunet train` needs; `argparse` reads its defaults from here."""

    # data
    dataset: str = "mnist"  # mnist, fashion_mnist or kmnist
    train_split: str = "train[:90%]"  # tfds split strings; any slice works
    val_split: str = "train[90%:]"
    test_split: str = "test"
    data_dir: str | None = None  # folder of the four IDX files; else $RELUNET_DATA_DIR
    tfds_dir: str | None = None  # tfds data dir; None means tfds's default ($TFDS_DATA_DIR)
    shuffle_buffer: int = 60_000  # >= MNIST's train size: a full shuffle each epoch
    # model: the lab's network, 784-256-256-10
    width: int = 256
    depth: int = 2
    activation: str = "relu"
    init: str = "random_normal"  # the lab's RandomNormal(): mean 0, stddev 0.05
    # optimisation: the lab's Adam, lr 1e-3, batch 128
    learning_rate: float = 1e-3
    batch_size: int = 128
    epochs: int = 5
    seed: int = 777  # the lab's seed
    deterministic: bool = False  # also enable TensorFlow op determinism (slower)
    jit_compile: str = "auto"  # XLA: auto, on or off
    # run directory and backups
    run_dir: str | None = None  # None means runs/<timestamp>
    backup_every: int = 100  # batches between backups (plus one at each epoch end)
    verbose: int | None = None  # Keras progress: 0 silent, 1 bar, 2 line per epoch

    def validate(self) -> "TrainConfig":
        """Raise RelunetError naming the first bad field; return self so calls chain."""
        check_choice("dataset", self.dataset, DATASETS)
        check_choice("activation", self.activation, ACTIVATIONS)
        check_choice("init", self.init, INITS)
        check_choice("jit_compile", self.jit_compile, ("auto", "on", "off"))
        for name in ("width", "depth", "batch_size", "epochs", "backup_every", "shuffle_buffer"):
            check_positive(name, getattr(self, name))
        check_positive("learning_rate", self.learning_rate)
        for name in ("train_split", "val_split", "test_split"):
            check_split(getattr(self, name), name)
        if self.verbose not in (None, 0, 1, 2):
            raise RelunetError(f"verbose must be 0, 1 or 2. Received: {self.verbose!r}.")
        return self

    def with_run_dir(self) -> "TrainConfig":
        """Return a copy whose run_dir is set, defaulting to runs/<timestamp>."""
        if self.run_dir:
            return self
        return dataclasses.replace(self, run_dir=f"runs/{time.strftime('%Y%m%d-%H%M%S')}")

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    def differences(self, saved: dict[str, Any]) -> list[str]:
        """Fields that change training and differ from a saved config, as 'name: old -> new'."""
        diffs = []
        for field in dataclasses.fields(self):
            if field.name in _LOCATION_FIELDS:
                continue
            old, new = saved.get(field.name, field.default), getattr(self, field.name)
            if old != new:
                diffs.append(f"{field.name}: {old!r} -> {new!r}")
        return diffs


def check_split(split: str, what: str = "split") -> str:
    """Check the syntax of a tfds split string such as 'train[:2000]' before loading anything."""
    if not isinstance(split, str) or not _SPLIT_RE.match(split):
        raise RelunetError(
            f"{what} must be a tfds split string such as 'train', 'train[:2000]' or "
            f"'train[90%:]'. Received: {split!r}."
        )
    for part in split.split("+"):
        name = part.split("[", 1)[0]
        if name not in _SPLIT_NAMES:
            raise RelunetError(
                f"{what} names the split {name!r}, but the datasets have only "
                f"{' and '.join(_SPLIT_NAMES)}. Received: {split!r}."
            )
    return split


def check_choice(name: str, value: Any, choices: tuple[str, ...]) -> None:
    if value not in choices:
        raise RelunetError(f"{name} must be one of {', '.join(choices)}. Received: {value!r}.")


def check_positive(name: str, value: Any) -> None:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not (
        math.isfinite(value) and value > 0
    ):
        raise RelunetError(f"{name} must be a positive number. Received: {value!r}.")
