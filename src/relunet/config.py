"""Training configuration: one dataclass, one default per field, validated at the edge.

This module imports no TensorFlow, so the command line can check flags in a few
milliseconds before paying for the TensorFlow import.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import os
import time
from dataclasses import dataclass
from typing import Any

from relunet.checks import (check_choice, check_fits_in_memory, check_positive, check_seed,
                            check_split)
from relunet.errors import RelunetError

DATASETS = ("mnist", "fashion_mnist", "kmnist")
LR_SCHEDULES = ("constant", "cosine")
NO_SPLIT = "none"  # --val-split none: train without a validation split
ACTIVATIONS = ("relu", "sigmoid", "leaky_relu")
INITS = ("random_normal", "he_normal", "glorot_uniform")
STRATEGIES = ("default", "mirrored", "multiworker")  # tf.distribute; see relunet.distribute

# Presets: hyperparameters chosen on the validation split (train[:90%] vs train[90%:]),
# then trained on all of train with no validation pass, backed up at epoch ends only
# (an epoch takes 1 to 2 s; mid-epoch backups cost about 0.5 s an epoch at width 512).
# Measured in benchmarks/bench_time_to_accuracy.py; the numbers are in benchmarks/README.md.
_FAST = dict(train_split="train", val_split=NO_SPLIT, init="he_normal", lr_schedule="cosine",
             label_smoothing=0.1, backup_every=10_000)
PRESETS = {
    "lab": {},  # the lab's own network and optimizer: the defaults
    "fast98": dict(_FAST, width=256, learning_rate=3e-3, epochs=4),
    "best": dict(_FAST, width=512, learning_rate=2e-3, epochs=8),
}

# Fields that change what is trained. A run directory may only be resumed by a config
# that agrees on all of them; the others (where the data lives, how chatty, on how many
# devices: the global batch is the same) may differ.
_LOCATION_FIELDS = ("run_dir", "data_dir", "tfds_dir", "verbose", "threads", "restart",
                    "strategy", "cpu_replicas")


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
    lr_schedule: str = "constant"  # or "cosine": decay to 0 over all epochs
    label_smoothing: float = 0.0  # applied to the training labels in the pipeline
    deterministic: bool = False  # also enable TensorFlow op determinism (slower; no XLA)
    # speed: measured in benchmarks/bench_train.py, see benchmarks/README.md
    jit_compile: str = "on"  # XLA: on, off or auto (Keras decides)
    steps_per_execution: int = 64  # train steps per call into the compiled function
    threads: int | None = None  # TensorFlow intra-op threads; None: one per core
    strategy: str = "default"  # tf.distribute: default (one device), mirrored, multiworker
    cpu_replicas: int | None = None  # mirrored over this many logical CPU devices
    grad_norms: bool = False  # also log each Dense kernel's gradient norm (grad_norm/dense_0, ...)
    # run directory and backups
    run_dir: str | None = None  # None means runs/<timestamp>
    backup_every: int = 100  # batches between backups (plus one at each epoch end)
    restart: bool = False  # discard this run dir's progress (and any unusable backup) first
    verbose: int | None = None  # Keras progress: 0 silent, 1 bar, 2 line per epoch

    def validate(self) -> "TrainConfig":
        """Raise RelunetError naming the first bad field; return self so calls chain."""
        check_choice("dataset", self.dataset, DATASETS)
        check_choice("activation", self.activation, ACTIVATIONS)
        check_choice("init", self.init, INITS)
        check_choice("jit_compile", self.jit_compile, ("auto", "on", "off"))
        check_choice("lr_schedule", self.lr_schedule, LR_SCHEDULES)
        for name in ("width", "depth", "batch_size", "epochs", "backup_every",
                     "steps_per_execution", "learning_rate"):
            check_positive(name, getattr(self, name))
        if self.threads is not None:
            check_positive("threads", self.threads)
        check_choice("strategy", self.strategy, STRATEGIES)
        if self.cpu_replicas is not None:
            check_positive("cpu_replicas", self.cpu_replicas)
            if self.strategy != "mirrored":
                raise RelunetError("cpu_replicas needs strategy 'mirrored'. "
                                   f"Received strategy: {self.strategy!r}.")
        if self.strategy == "multiworker":
            if not self.run_dir:
                raise RelunetError("strategy 'multiworker' needs a run_dir that every worker "
                                   "names (and can reach), e.g. --run-dir runs/job1.")
            worker_task()
        if not 0 <= self.label_smoothing < 1:
            raise RelunetError(f"label_smoothing must lie in [0, 1). Received: {self.label_smoothing!r}.")
        for name in ("train_split", "test_split"):
            check_split(getattr(self, name), name)
        if self.val_split != NO_SPLIT:
            check_split(self.val_split, "val_split")
        if self.verbose not in (None, 0, 1, 2):
            raise RelunetError(f"verbose must be 0, 1 or 2. Received: {self.verbose!r}.")
        check_seed(self.seed)
        check_fits_in_memory(self.width, self.depth, self.batch_size)
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
        return _differences(self, saved, ignore=_LOCATION_FIELDS)

    def fingerprint(self) -> str:
        """A digest of the fields that change training: a backup records the one it was
        written under, so a backup from another configuration is never resumed."""
        fields = {k: v for k, v in self.to_dict().items() if k not in _LOCATION_FIELDS}
        return hashlib.sha256(json.dumps(fields, sort_keys=True).encode()).hexdigest()[:16]


TUNERS = ("random", "hyperband", "bayesian")
SEARCHABLE = ("depth", "batch_size")  # added to learning rate and width by --search
DEPTH_RANGE = (1, 4)
BATCH_SIZE_CHOICES = (64, 128, 256, 512)
WIDTH_STEP = 32

# Fields that do not change what a search explores: they may differ between the runs
# of one search (max_trials may grow to extend it).
_TUNE_FREE_FIELDS = ("max_trials", "directory", "project_name", "overwrite", "export_dir",
                     "data_dir", "tfds_dir", "full_train_split", "test_split", "verbose", "summary")


@dataclass
class TuneConfig:
    """Everything `relunet tune` needs. Fixed hyperparameters default as in TrainConfig."""

    # the search
    tuner: str = "random"  # random, hyperband or bayesian
    max_trials: int = 10  # for hyperband, a cap on the trials its brackets ask for
    epochs: int = 5  # max epochs per trial (Hyperband's max_epochs)
    executions_per_trial: int = 1
    patience: int = 2  # EarlyStopping on val_accuracy
    seed: int = TrainConfig.seed
    directory: str = "tuning"
    project_name: str = "relunet"
    overwrite: bool = False  # start the project again
    # the space: learning rate (log-uniform) and width always, SEARCHABLE on request
    lr_min: float = 1e-4
    lr_max: float = 1e-2
    width_min: int = 32
    width_max: int = 1024
    search: tuple[str, ...] = ()
    # fixed unless searched
    depth: int = TrainConfig.depth
    activation: str = TrainConfig.activation
    init: str = TrainConfig.init
    batch_size: int = TrainConfig.batch_size
    # Off, unlike train: every trial is a new model to compile, and for trials of a few
    # epochs XLA's compile time outweighs its speed (measured: 8 trials of 3 epochs took
    # 142 s with it, 106 s without).
    jit_compile: str = "off"
    steps_per_execution: int = TrainConfig.steps_per_execution
    # data: the search sees train and validation only; test is for the final model
    dataset: str = TrainConfig.dataset
    train_split: str = TrainConfig.train_split
    val_split: str = TrainConfig.val_split
    full_train_split: str = "train"  # the best hyperparameters are retrained on this
    test_split: str = TrainConfig.test_split
    data_dir: str | None = None
    tfds_dir: str | None = None
    export_dir: str | None = "saved_models/relunet"  # None: do not export
    verbose: int | None = None
    summary: bool = False  # print the table of an existing search and stop

    def validate(self) -> "TuneConfig":
        """Raise RelunetError naming the first bad field; return self so calls chain."""
        check_choice("tuner", self.tuner, TUNERS)
        check_choice("dataset", self.dataset, DATASETS)
        check_choice("activation", self.activation, ACTIVATIONS)
        check_choice("init", self.init, INITS)
        check_choice("jit_compile", self.jit_compile, ("auto", "on", "off"))
        for name in ("max_trials", "epochs", "executions_per_trial", "patience", "depth",
                     "batch_size", "lr_min", "lr_max", "width_min", "width_max",
                     "steps_per_execution"):
            check_positive(name, getattr(self, name))
        for low, high in (("lr_min", "lr_max"), ("width_min", "width_max")):
            if getattr(self, low) > getattr(self, high):
                raise RelunetError(f"{low} must not exceed {high}. Received: {low}="
                                   f"{getattr(self, low)}, {high}={getattr(self, high)}.")
        for name in self.search:
            check_choice("search", name, SEARCHABLE)
        for name in ("train_split", "val_split", "full_train_split", "test_split"):
            check_split(getattr(self, name), name)
        if not self.project_name or "/" in self.project_name or self.project_name in (".", ".."):
            raise RelunetError(f"project_name must be a plain folder name. Received: {self.project_name!r}.")
        check_seed(self.seed)
        depth = DEPTH_RANGE[1] if "depth" in self.search else self.depth
        batch_size = max(BATCH_SIZE_CHOICES) if "batch_size" in self.search else self.batch_size
        check_fits_in_memory(self.width_max, depth, batch_size)  # the largest trial
        return self

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    def space_differences(self, saved: dict[str, Any]) -> list[str]:
        """Fields that change the search and differ from a saved config."""
        return _differences(self, saved, ignore=_TUNE_FREE_FIELDS)


@dataclass
class CompareConfig:
    """`relunet compare`: one network, several activations and depths, same data and seed."""

    activations: tuple[str, ...] = ("relu", "sigmoid", "leaky_relu")
    depths: tuple[int, ...] = (2,)
    out: str | None = None  # None means runs/compare-<timestamp>
    # everything else as `relunet train` has it
    width: int = TrainConfig.width
    init: str = TrainConfig.init
    learning_rate: float = TrainConfig.learning_rate
    batch_size: int = TrainConfig.batch_size
    epochs: int = TrainConfig.epochs
    seed: int = TrainConfig.seed
    # Off, unlike train: each run is a new model to compile (measured on full MNIST,
    # depths 2 and 6, 5 epochs: 139 s of training with XLA, 112 s without).
    jit_compile: str = "off"
    steps_per_execution: int = TrainConfig.steps_per_execution
    dataset: str = TrainConfig.dataset
    train_split: str = TrainConfig.train_split
    val_split: str = TrainConfig.val_split
    test_split: str = TrainConfig.test_split
    data_dir: str | None = None
    tfds_dir: str | None = None
    verbose: int | None = None

    def validate(self) -> "CompareConfig":
        """Raise RelunetError naming the first bad field; return self so calls chain."""
        if not self.activations or not self.depths:
            raise RelunetError("activations and depths must each name at least one value.")
        for activation in self.activations:
            check_choice("activations", activation, ACTIVATIONS)
        for depth in self.depths:
            check_positive("depths", depth)
        check_choice("init", self.init, INITS)
        check_choice("dataset", self.dataset, DATASETS)
        check_choice("jit_compile", self.jit_compile, ("auto", "on", "off"))
        for name in ("width", "batch_size", "epochs", "learning_rate", "steps_per_execution"):
            check_positive(name, getattr(self, name))
        for name in ("train_split", "val_split", "test_split"):
            check_split(getattr(self, name), name)
        check_seed(self.seed)
        check_fits_in_memory(self.width, max(self.depths), self.batch_size)
        return self

    def with_out(self) -> "CompareConfig":
        if self.out:
            return self
        return dataclasses.replace(self, out=f"runs/compare-{time.strftime('%Y%m%d-%H%M%S')}")


def _differences(config: Any, saved: dict[str, Any], ignore: tuple[str, ...]) -> list[str]:
    diffs = []
    for field in dataclasses.fields(config):
        if field.name in ignore:
            continue
        old, new = saved.get(field.name, field.default), getattr(config, field.name)
        if isinstance(new, tuple):
            old = tuple(old) if isinstance(old, list) else old
        if old != new:
            diffs.append(f"{field.name}: {old!r} -> {new!r}")
    return diffs


def worker_task(environ: dict[str, str] | None = None) -> tuple[str, int, int]:
    """(task type, task index, number of training tasks) from the TF_CONFIG variable that
    MultiWorkerMirroredStrategy reads; RelunetError naming the problem if it is unusable."""
    text = (os.environ if environ is None else environ).get("TF_CONFIG")
    if not text:
        raise RelunetError("strategy 'multiworker' needs the TF_CONFIG environment variable "
                           "(cluster and task; see the README).")
    try:
        tf_config = json.loads(text)
        cluster, task = tf_config["cluster"], tf_config["task"]
        task_type, index = task["type"], int(task["index"])
        tasks = {kind: list(cluster[kind]) for kind in ("chief", "worker") if kind in cluster}
    except (ValueError, KeyError, TypeError) as error:
        raise RelunetError(f"TF_CONFIG is not a cluster and task description ({error!r}).") from None
    if task_type not in tasks or not 0 <= index < len(tasks[task_type]):
        raise RelunetError(f"TF_CONFIG's task {task_type} {index} is not in its cluster "
                           f"({', '.join(f'{len(v)} {k}' for k, v in tasks.items()) or 'empty'}).")
    return task_type, index, sum(len(v) for v in tasks.values())
