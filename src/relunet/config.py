"""Configuration as plain values: field groups composed into each command's config.

Each field is declared once, with its default and its help; `relunet.cli` builds
the command line from these fields, `build_model` takes its defaults from them, and
a run dir's `config.json` is `asdict` of one. This module imports no TensorFlow, so
the command line checks flags in milliseconds before paying for the TensorFlow import.

    DataConfig      what to train and test on
    LayerConfig     what each hidden layer is (width, init)
    ModelConfig     LayerConfig plus how many layers and their activation
    OptimConfig     how to train: Adam, batches, epochs, seed, speed settings
    TrainConfig     Data + Model + Optim + the run (run dir, backups, devices)
    TuneConfig      Data + Model + Optim as the fixed values, plus the search
    CompareConfig   Data + Layer + Optim, plus the activations and depths compared
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import time
from dataclasses import dataclass
from typing import Any

from relunet.checks import (
    check_at_most,
    check_choice,
    check_fits_in_memory,
    check_positive,
    check_seed,
    check_split,
)
from relunet.errors import RelunetError

DATASETS = ("mnist", "fashion_mnist", "kmnist")
ACTIVATIONS = ("relu", "sigmoid", "leaky_relu")
INITS = ("random_normal", "he_normal", "glorot_uniform")
LR_SCHEDULES = ("constant", "cosine")
JIT_MODES = ("on", "off", "auto")
STRATEGIES = ("default", "mirrored", "multiworker")  # tf.distribute; see relunet.distribute
NO_SPLIT = "none"  # --val-split none: train without a validation split


def option(default: Any, help: str, **flag: Any) -> Any:
    """A config field with its command-line help (and argparse extras: flags, metavar,
    choices); `fingerprint=False` marks a field that does not change what is trained."""
    return dataclasses.field(default=default, metadata={"help": help, **flag})


@dataclass
class DataConfig:
    dataset: str = option("mnist", "the dataset", choices=DATASETS)
    train_split: str = option("train[:90%]", "tfds split to train on", metavar="SPLIT")
    val_split: str = option("train[90%:]", "tfds split to validate on, or none", metavar="SPLIT")
    test_split: str = option("test", "tfds split to test the final model on", metavar="SPLIT")
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

    def check_data(self) -> None:
        check_choice("dataset", self.dataset, DATASETS)
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

    def check_layers(self) -> None:
        check_positive("width", self.width)
        check_choice("init", self.init, INITS)


@dataclass
class ModelConfig(LayerConfig):
    depth: int = option(2, "hidden layers")
    activation: str = option("relu", "activation of the hidden layers", choices=ACTIVATIONS)

    def check_model(self) -> None:
        self.check_layers()
        check_positive("depth", self.depth)
        check_choice("activation", self.activation, ACTIVATIONS)


@dataclass
class OptimConfig:
    learning_rate: float = option(
        1e-3, "Adam learning rate", flags=("--lr", "--learning-rate"), metavar="LR"
    )
    batch_size: int = option(128, "images per step")
    epochs: int = option(5, "passes over the training split")
    seed: int = option(777, "seeds Python, NumPy, TensorFlow and each epoch's data order")
    lr_schedule: str = option(
        "constant", "cosine decays the learning rate to 0 over all steps", choices=LR_SCHEDULES
    )
    label_smoothing: float = option(0.0, "applied to the training labels", metavar="X")
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
        for name in ("learning_rate", "batch_size", "epochs", "steps_per_execution"):
            check_positive(name, getattr(self, name))
        check_seed(self.seed)
        check_choice("lr_schedule", self.lr_schedule, LR_SCHEDULES)
        check_choice("jit_compile", self.jit_compile, JIT_MODES)
        if not 0 <= self.label_smoothing < 1:
            raise RelunetError(
                f"label_smoothing must lie in [0, 1). Received: {self.label_smoothing!r}."
            )
        # TensorFlow counts steps per call in int32; more threads than this is a typo.
        check_at_most("steps_per_execution", self.steps_per_execution, 2**31 - 1)
        if self.threads is not None:
            check_positive("threads", self.threads)
            check_at_most("threads", self.threads, MAX_THREADS)


MAX_THREADS = 1024
MAX_CPU_REPLICAS = 64  # each logical CPU device costs memory; more is a typo


def _check_verbose(verbose: Any) -> None:
    if verbose not in (None, 0, 1, 2):
        raise RelunetError(f"verbose must be 0, 1 or 2. Received: {verbose!r}.")


@dataclass
class TrainConfig(OptimConfig, ModelConfig, DataConfig):  # flags: data, model, optim, run
    """Everything `relunet train` needs."""

    run_dir: str | None = option(
        None,
        "where the run lives; rerun with the same one to resume (default: the newest "
        "unfinished run of this configuration in runs/, else a new runs/<timestamp>)",
        metavar="DIR",
        fingerprint=False,
    )
    backup_every: int = option(100, "steps between backups, besides one per epoch")
    restart: bool = option(
        False,
        "discard the run dir's progress (and an unusable backup) and train from the start",
        fingerprint=False,
    )
    grad_norms: bool = option(
        False, "also log each Dense kernel's gradient norm per epoch (grad_norm/dense_0, ...)"
    )
    strategy: str = option(
        "default",
        "tf.distribute: one device, mirrored over local devices, or multiworker as TF_CONFIG says",
        choices=STRATEGIES,
        fingerprint=False,
    )  # the global batch is the same
    cpu_replicas: int | None = option(
        None,
        "with --strategy mirrored: split the CPU into N logical devices (to test that path)",
        fingerprint=False,
    )
    verbose: int | None = option(
        None,
        "0 silent, 1 progress bar, 2 one line per epoch (default: 1 on a terminal, else 2)",
        fingerprint=False,
    )

    def validate(self) -> TrainConfig:
        """Raise RelunetError naming the first bad field; return self so calls chain."""
        self.check_data()
        self.check_model()
        self.check_optim()
        check_positive("backup_every", self.backup_every)
        check_choice("strategy", self.strategy, STRATEGIES)
        if self.cpu_replicas is not None:
            check_positive("cpu_replicas", self.cpu_replicas)
            check_at_most("cpu_replicas", self.cpu_replicas, MAX_CPU_REPLICAS)
            if self.strategy != "mirrored":
                raise RelunetError(
                    f"cpu_replicas needs strategy 'mirrored'. Received strategy: {self.strategy!r}."
                )
        if self.strategy == "multiworker" and not self.run_dir:
            raise RelunetError(
                "strategy 'multiworker' needs a run_dir that every worker "
                "names (and can reach), e.g. --run-dir runs/job1."
            )
        _check_verbose(self.verbose)
        check_fits_in_memory(self.width, self.depth, self.batch_size)
        return self

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    def differences(self, saved: dict[str, Any]) -> list[str]:
        """Fields that change training and differ from a saved config, as 'name: old -> new'."""
        return differences(self, saved)

    def fingerprint(self) -> str:
        """A digest of the fields that change training: a backup records the one it was
        written under, so a backup from another configuration is never resumed."""
        fields = {
            f.name: getattr(self, f.name)
            for f in dataclasses.fields(self)
            if f.metadata.get("fingerprint", True)
        }
        return hashlib.sha256(json.dumps(fields, sort_keys=True).encode()).hexdigest()[:16]


# Presets: hyperparameters chosen on the validation split (train[:90%] vs train[90%:]),
# then trained on all of train with no validation pass, backed up at epoch ends only
# (an epoch takes 1 to 2 s; mid-epoch backups cost about 0.5 s an epoch at width 512).
# Measured in benchmarks/bench_time_to_accuracy.py; the numbers are in benchmarks/README.md.
_FAST = dict(
    train_split="train",
    val_split=NO_SPLIT,
    init="he_normal",
    lr_schedule="cosine",
    label_smoothing=0.1,
    backup_every=10_000,
)
PRESETS = {
    "lab": {},  # the lab's own network and optimizer: the defaults
    # 98% within T + 8 s; batches of 256 train more images a second on a CPU than 128
    # (at 128 and 3e-3 it was the same accuracy, 1 s slower: benchmarks/README.md).
    "fast98": dict(_FAST, width=256, batch_size=256, learning_rate=4e-3, epochs=4),
    # 98.5% within T + 15 s (T: importing TensorFlow); until 0.2 it was 8 epochs at 2e-3,
    # 98.7% in twice the time (benchmarks/README.md has both).
    "best": dict(_FAST, width=512, learning_rate=3e-3, epochs=4),
}

TUNERS = ("random", "hyperband", "bayesian")
# What --search may name, and each one's range (learning rate and width: their flags).
SEARCHABLE = (
    "learning_rate",
    "width",
    "depth",
    "batch_size",
    "init",
    "lr_schedule",
    "label_smoothing",
    "epochs",
)
DEPTH_RANGE = (1, 4)
BATCH_SIZE_CHOICES = (64, 128, 256, 512)
LABEL_SMOOTHING_CHOICES = (0.0, 0.05, 0.1, 0.2)
WIDTH_STEP = 32  # the width's grid in a search


@dataclass
class TuneConfig(OptimConfig, ModelConfig, DataConfig):
    """Everything `relunet tune` needs; the model and optimiser fields are the values
    every trial uses unless they are searched."""

    tuner: str = option("random", "the keras-tuner search", choices=TUNERS)
    epochs: int = option(
        5,
        "epochs of a trial: hyperband's max_epochs, and with --search "
        "epochs the most a trial draws",
    )
    max_trials: int = option(10, "trials in all; for hyperband a cap on its brackets")
    executions_per_trial: int = option(1, "fits per trial, averaged")
    patience: int = option(2, "EarlyStopping patience on val_accuracy, in epochs")
    lr_min: float = option(1e-4, "smallest learning rate searched (log-uniform)", metavar="LR")
    lr_max: float = option(1e-2, "largest learning rate searched", metavar="LR")
    width_min: int = option(32, "smallest width searched")
    width_max: int = option(1024, f"largest width searched (step {WIDTH_STEP})")
    epochs_min: int = option(1, "fewest epochs a trial draws, with --search epochs")
    search: tuple[str, ...] = option(
        ("learning_rate", "width"),
        f"the hyperparameters searched, from {', '.join(SEARCHABLE)} (comma-separated); "
        "the others keep their flag's value. epochs: --epochs-min to --epochs; depth: "
        f"{DEPTH_RANGE[0]} to {DEPTH_RANGE[1]}; batch_size: {BATCH_SIZE_CHOICES}; "
        f"label_smoothing: {LABEL_SMOOTHING_CHOICES}",
        metavar="LIST",
    )
    directory: str = option("tuning", "where searches live", metavar="DIR")
    project_name: str = option("relunet", "the search's folder in --directory", metavar="NAME")
    overwrite: bool = option(False, "delete the project's trials and start over")
    full_train_split: str = option(
        "train", "the best hyperparameters are retrained on it", metavar="SPLIT"
    )
    export_dir: str | None = option(
        None,
        "export the retrained best model as the next SavedModel version in this folder "
        "(default: no export; never into a folder you serve from unless you say so)",
        flags=("--export",),
        metavar="DIR",
    )
    summary: bool = option(False, "print the table of an existing search and stop")
    verbose: int | None = option(None, "Keras progress output: 0, 1 or 2")
    # Off, unlike train: every trial is a new model to compile, and for trials of a few
    # epochs XLA's compile time outweighs its speed (measured: 8 trials of 3 epochs took
    # 142 s with it, 106 s without).
    jit_compile: str = option("off", "XLA", choices=JIT_MODES)

    def validate(self) -> TuneConfig:
        """Raise RelunetError naming the first bad field; return self so calls chain."""
        self.check_data()
        check_split(self.full_train_split, "full_train_split")
        self.check_model()
        self.check_optim()
        check_choice("tuner", self.tuner, TUNERS)
        for name in (
            "max_trials",
            "executions_per_trial",
            "patience",
            "lr_min",
            "lr_max",
            "width_min",
            "width_max",
        ):
            check_positive(name, getattr(self, name))
        check_positive("epochs_min", self.epochs_min)
        for low, high in (
            ("lr_min", "lr_max"),
            ("width_min", "width_max"),
            ("epochs_min", "epochs"),
        ):
            if getattr(self, low) > getattr(self, high):
                raise RelunetError(
                    f"{low} must not exceed {high}. Received: {low}="
                    f"{getattr(self, low)}, {high}={getattr(self, high)}."
                )
        if not self.search:
            raise RelunetError("search must name at least one hyperparameter. Received: ''.")
        for name in self.search:
            check_choice("search", name, SEARCHABLE)
        if self.tuner == "hyperband" and "epochs" in self.search:
            raise RelunetError(
                "hyperband decides each trial's epochs itself, so search cannot "
                "name epochs with it; --epochs is its maximum."
            )
        if not self.project_name or "/" in self.project_name or self.project_name in (".", ".."):
            raise RelunetError(
                f"project_name must be a plain folder name. Received: {self.project_name!r}."
            )
        _check_verbose(self.verbose)
        depth = DEPTH_RANGE[1] if "depth" in self.search else self.depth
        batch_size = max(BATCH_SIZE_CHOICES) if "batch_size" in self.search else self.batch_size
        check_fits_in_memory(self.width_max, depth, batch_size)  # the largest trial
        return self

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    def space_differences(self, saved: dict[str, Any]) -> list[str]:
        """Fields that change the search and differ from a saved config."""
        return differences(self, saved, ignore=_TUNE_FREE_FIELDS)


# Fields that do not change what a search explores: they may differ between the runs
# of one search (max_trials may grow to extend it).
_TUNE_FREE_FIELDS = (
    "max_trials",
    "directory",
    "project_name",
    "overwrite",
    "export_dir",
    "data_dir",
    "tfds_dir",
    "full_train_split",
    "test_split",
    "verbose",
    "summary",
    "threads",
)


@dataclass
class CompareConfig(OptimConfig, LayerConfig, DataConfig):
    """`relunet compare`: one network, several activations and depths, same data and seed."""

    activations: tuple[str, ...] = option(ACTIVATIONS, "the activations compared", metavar="LIST")
    depths: tuple[int, ...] = option(
        (2,), "the hidden-layer counts compared, e.g. 2,6", metavar="LIST"
    )
    out: str | None = option(
        None, "output folder (default: runs/compare-<timestamp>)", metavar="DIR"
    )
    verbose: int | None = option(None, "Keras progress output: 0, 1 or 2")
    # Off, unlike train: each run is a new model to compile (measured on full MNIST,
    # depths 2 and 6, 5 epochs: 139 s of training with XLA, 112 s without).
    jit_compile: str = option("off", "XLA", choices=JIT_MODES)

    def validate(self) -> CompareConfig:
        """Raise RelunetError naming the first bad field; return self so calls chain."""
        if not self.activations or not self.depths:
            raise RelunetError("activations and depths must each name at least one value.")
        for activation in self.activations:
            check_choice("activations", activation, ACTIVATIONS)
        for depth in self.depths:
            check_positive("depths", depth)
        self.check_data()
        if self.val_split == NO_SPLIT:
            raise RelunetError(
                "compare plots validation accuracy, so val_split must name a "
                "split. Received: 'none'."
            )
        self.check_layers()
        self.check_optim()
        _check_verbose(self.verbose)
        check_fits_in_memory(self.width, max(self.depths), self.batch_size)
        return self

    def with_out(self) -> CompareConfig:
        if self.out:
            return self
        return dataclasses.replace(self, out=f"runs/compare-{time.strftime('%Y%m%d-%H%M%S')}")


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
