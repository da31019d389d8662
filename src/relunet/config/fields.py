"""The field groups every command's config is composed of, each field declared once.

    SourceConfig    which dataset, and where its files are
    DataConfig      SourceConfig plus the splits to train, validate and test on
    LayerConfig     what each hidden layer is (width, init, dropout, batch norm)
    ModelConfig     LayerConfig plus how many layers, their activation, and deskewing
    OptimConfig     how to train: Adam, batches, epochs, seed, speed settings
    AugmentConfig   random distortions of the training images (off by default)

A field carries its default and its help; `relunet.cli` makes the command line from
them, so a flag and its default are written once, here. Each group checks its own
values (no TensorFlow, no files): `ReluNet` checks its ModelConfig with the very
method the command line runs.
"""

from __future__ import annotations

import dataclasses
import functools
import typing
from dataclasses import dataclass
from typing import Any

from relunet.base.errors import RelunetError
from relunet.base.values import check_choice, check_count, check_in, check_seed, check_split

DATASETS = ("mnist", "fashion_mnist", "kmnist")
ACTIVATIONS = ("relu", "sigmoid", "leaky_relu")
INITS = ("random_normal", "he_normal", "glorot_uniform")
LR_SCHEDULES = ("constant", "cosine")
JIT_MODES = ("on", "off", "auto")
NO_SPLIT = "none"  # --val-split none: train without a validation split
MAX_THREADS = 1024


def option(default: Any, help: str, **flag: Any) -> Any:
    """A config field with its command-line help and argparse extras (flags, metavar,
    choices; positional=True or required=True for a command's main argument);
    `fingerprint=False` marks a field that does not change what is trained; `interval`
    ("[0, 1)") bounds a number field (see check_numbers)."""
    return dataclasses.field(default=default, metadata={"help": help, **flag})


@functools.cache
def field_kinds(config: type) -> dict[str, tuple[type, bool]]:
    """Each field's value type, read from its annotation, and whether it is a list
    (`tuple[float, ...]` is (float, True); `int | None` is (int, False))."""
    kinds = {}
    for name, hint in typing.get_type_hints(config).items():
        args = [a for a in typing.get_args(hint) if a is not type(None) and a is not Ellipsis]
        if typing.get_origin(hint) is tuple:
            kinds[name] = (args[0], True)
        else:
            kinds[name] = (args[0] if args else hint, False)
    return kinds


def check_numbers(config: Any) -> None:
    """The one rule for every float field of every config: a finite number inside the
    interval its `option` declares (NaN, the infinities and 1e400 never pass), each item
    of a list alike. A float field added to any group is checked without a line here."""
    kinds = field_kinds(type(config))
    for field in dataclasses.fields(config):
        kind, is_list = kinds[field.name]
        value = getattr(config, field.name)
        if kind is not float or value is None:
            continue
        interval = field.metadata.get("interval", "(-inf, inf)")
        for item in value if is_list else (value,):
            check_in(field.name, item, interval)


def flags_of(field: dataclasses.Field) -> tuple[str, ...]:
    """A field's command-line flags: those its `option` names, else --its-name. The
    command line and every message that names a flag read it here."""
    return field.metadata.get("flags", (f"--{field.name.replace('_', '-')}",))


def field_defaults(config: type) -> dict[str, Any]:
    """Each field of a config dataclass and its default."""
    return {f.name: f.default for f in dataclasses.fields(config)}


def take(config: type, source: Any, **overrides: Any) -> Any:
    """A `config` made from the fields of `source` it shares (and `overrides`): how a
    command's config hands a group on whole, so a field added to the group travels."""
    names = {f.name for f in dataclasses.fields(config)}
    values = {name: getattr(source, name) for name in names if hasattr(source, name)}
    return config(**{**values, **overrides})


def check_verbose(verbose: Any) -> None:
    if verbose not in (None, 0, 1, 2):
        raise RelunetError(f"verbose must be 0, 1 or 2. Received: {verbose!r}.")


@dataclass
class SourceConfig:
    dataset: str = option("mnist", "the dataset", choices=DATASETS)
    data_dir: str | None = option(
        None,
        "folder of the four IDX files (default: $RELUNET_DATA_DIR)",
        metavar="DIR",
        fingerprint=False,
    )
    tfds_dir: str | None = option(
        None,
        "tfds data dir (default: $TFDS_DATA_DIR or ~/tensorflow_datasets)",
        metavar="DIR",
        fingerprint=False,
    )

    def check_source(self) -> None:
        check_choice("dataset", self.dataset, DATASETS)


@dataclass
class DataConfig(SourceConfig):
    train_split: str = option("train[:90%]", "tfds split to train on", metavar="SPLIT")
    val_split: str = option("train[90%:]", "tfds split to validate on, or none", metavar="SPLIT")
    test_split: str = option("test", "tfds split to test the final model on", metavar="SPLIT")

    def check_data(self) -> None:
        self.check_source()
        for name in ("train_split", "test_split"):
            check_split(getattr(self, name), name)
        if self.val_split != NO_SPLIT:
            check_split(self.val_split, "val_split")


@dataclass
class LayerConfig:
    width: int = option(256, "units per hidden layer")
    init: str = option(
        "random_normal",
        "kernel initializer (the lab's is RandomNormal, stddev 0.05)",
        choices=INITS,
    )

    dropout: float = option(
        0.0,
        "dropout rate after each hidden layer (lab 10-3); 0 keeps every unit",
        metavar="X",
        interval="[0, 1)",
    )
    batch_norm: bool = option(
        False, "batch normalization between each hidden Dense and its activation (lab 10-4)"
    )

    def check_layers(self) -> None:
        check_count("width", self.width)
        check_choice("init", self.init, INITS)


@dataclass
class ModelConfig(LayerConfig):
    depth: int = option(2, "hidden layers")
    activation: str = option("relu", "activation of the hidden layers", choices=ACTIVATIONS)
    deskew: bool = option(
        False,
        "straighten each image's slant by its moments before the first layer (part of the "
        "model: training, evaluation, export and serving all see it)",
    )

    def check_model(self) -> ModelConfig:
        """Raise RelunetError naming the first bad field; return self so calls chain."""
        check_numbers(self)
        self.check_layers()
        check_count("depth", self.depth)
        check_choice("activation", self.activation, ACTIVATIONS)
        return self


@dataclass
class OptimConfig:
    learning_rate: float = option(
        1e-3,
        "Adam learning rate",
        flags=("--lr", "--learning-rate"),
        metavar="LR",
        interval="(0, inf)",
    )
    batch_size: int = option(128, "images per step")
    epochs: int = option(5, "passes over the training split")
    seed: int = option(777, "seeds Python, NumPy, TensorFlow and each epoch's data order")
    lr_schedule: str = option(
        "constant", "cosine decays the learning rate to 0 over all steps", choices=LR_SCHEDULES
    )
    label_smoothing: float = option(
        0.0, "applied to the training labels", metavar="X", interval="[0, 1)"
    )
    deterministic: bool = option(
        False,
        "also make TensorFlow ops deterministic (slower, "
        "and without XLA); a resumed run then ends bitwise equal "
        "to an uninterrupted one",
    )
    # Speed: measured in benchmarks/bench_train.py, see benchmarks/README.md.
    jit_compile: str = option("on", "XLA", choices=JIT_MODES)
    steps_per_execution: int = option(64, "train steps per call into the compiled step")
    threads: int | None = option(
        None, "TensorFlow intra-op threads (default: one per core)", fingerprint=False
    )
    run_eagerly: bool = option(
        False,
        "run train_step eagerly, op by op, so print() and a debugger can step through "
        "the lab's functions; many times slower, for learning, not training",
        fingerprint=False,
    )

    def check_optim(self) -> None:
        for name in ("batch_size", "epochs", "steps_per_execution"):
            check_count(name, getattr(self, name))
        check_seed(self.seed)
        check_choice("lr_schedule", self.lr_schedule, LR_SCHEDULES)
        check_choice("jit_compile", self.jit_compile, JIT_MODES)
        if self.threads is not None:
            check_count("threads", self.threads, MAX_THREADS)


@dataclass
class AugmentConfig:
    """What training adds to MNIST's own images, off by default as in the lab: random
    distortions of them (relunet.data.augment; the strengths apply once --augment is above
    0), and shapes that are not digits (relunet.data.nondigits)."""

    augment: float = option(
        0.0,
        "the chance that a training image is distorted (rotated, scaled, sheared, moved, "
        "warped, its strokes thickened or thinned; 0: never, as in the lab)",
        metavar="P",
        interval="[0, 1]",
    )
    # Each strength's interval holds every distortion that leaves a digit on the image.
    rotation: float = option(
        15.0, "largest rotation, in degrees", metavar="DEG", interval="[0, 180]"
    )
    scale: float = option(
        0.1, "largest change of size, as a fraction", metavar="X", interval="[0, 1)"
    )
    aspect: float = option(
        0.1, "largest change of width against height", metavar="X", interval="[0, 1)"
    )
    shear: float = option(0.15, "largest horizontal shear", metavar="X", interval="[0, 1]")
    translate: float = option(2.0, "largest shift, in pixels", metavar="PX", interval="[0, 14]")
    elastic_alpha: float = option(
        34.0,
        "elastic distortion's strength in pixels (Simard et al. 2003); 0: none",
        metavar="PX",
        interval="[0, 100]",
    )
    elastic_sigma: float = option(
        4.0, "elastic distortion's smoothness in pixels", metavar="PX", interval="[0, 28]"
    )
    thickness: float = option(
        0.5,
        "largest blend toward thicker or thinner strokes, as a fraction",
        metavar="X",
        interval="[0, 1]",
    )
    non_digits: float = option(
        0.0,
        "shapes that are not digits (pen strokes, stars, grids, two digits drawn as one) "
        "added to each batch, as a share of its digits, labelled with no class: what the "
        "model learns to answer 'not a digit' (0: none, as in the lab)",
        metavar="P",
        interval="[0, 1]",
    )

    def check_augment(self) -> None:
        defaults = field_defaults(AugmentConfig)
        for name in defaults.keys() - {"augment", "non_digits"}:
            value = getattr(self, name)
            if not self.augment and value != defaults[name]:
                raise RelunetError(
                    f"{name} shapes the distortions of --augment, which is 0, so it would "
                    f"change nothing; give --augment too. Received: {name}={value!r}."
                )
        if self.elastic_alpha and not self.elastic_sigma:
            raise RelunetError("elastic_sigma must be above 0 while elastic_alpha is.")


def differences(config: Any, saved: dict[str, Any], ignore: tuple[str, ...] = ()) -> list[str]:
    """Fields of `config` that change training (or a search) and differ from a saved
    config, as 'name: old -> new'; a field the saved config lacks had its default."""
    diffs = []
    for field in dataclasses.fields(config):
        if field.name in ignore or not field.metadata.get("fingerprint", True):
            continue
        old, new = saved.get(field.name, field.default), getattr(config, field.name)
        if isinstance(new, tuple):
            old = tuple(old) if isinstance(old, list) else old
        if old != new:
            diffs.append(f"{field.name}: {old!r} -> {new!r}")
    return diffs
