"""The configs of the training commands: `relunet train`, `tune` and `compare`.

    TrainConfig     Data + Model + Optim + Augment + the run (run dir, backups, devices)
    TuneConfig      Data + Model + Optim as the fixed values, plus the search
    CompareConfig   Data + Optim, plus the layer settings compared (or a named series) and seeds

Each holds exactly the fields its command honours, and `validate()` checks their
values; the checks of paths and files are `relunet.preflight`'s.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
from dataclasses import dataclass
from typing import Any

from relunet.config.fields import (
    ACTIVATIONS,
    INITS,
    JIT_MODES,
    NO_SPLIT,
    AugmentConfig,
    DataConfig,
    ModelConfig,
    OptimConfig,
    check_verbose,
    differences,
    field_defaults,
    option,
)
from relunet.errors import RelunetError
from relunet.series import SERIES
from relunet.values import (
    SEED_MAX,
    check_choice,
    check_count,
    check_fits_in_memory,
    check_positive,
    check_split,
)

STRATEGIES = ("default", "mirrored", "multiworker")  # tf.distribute; see relunet.distribute
MAX_CPU_REPLICAS = 64  # each logical CPU device costs memory; more is a typo


@dataclass
class TrainConfig(AugmentConfig, OptimConfig, ModelConfig, DataConfig):  # flags in this order
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
        self.check_augment()
        check_count("backup_every", self.backup_every)
        check_choice("strategy", self.strategy, STRATEGIES)
        if self.cpu_replicas is not None:
            check_count("cpu_replicas", self.cpu_replicas, MAX_CPU_REPLICAS)
            if self.strategy != "mirrored":
                raise RelunetError(
                    f"cpu_replicas needs strategy 'mirrored'. Received strategy: {self.strategy!r}."
                )
        if self.strategy == "multiworker" and not self.run_dir:
            raise RelunetError(
                "strategy 'multiworker' needs a run_dir that every worker "
                "names (and can reach), e.g. --run-dir runs/job1."
            )
        check_verbose(self.verbose)
        check_fits_in_memory(self.width, self.depth, self.batch_size)
        return self

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    def differences(self, saved: dict[str, Any]) -> list[str]:
        """Fields that change training and differ from a saved config, as 'name: old -> new'."""
        return differences(self, saved)

    def fingerprint(self) -> str:
        """A digest of the fields that change training: a backup records the one it was
        written under, so a backup from another configuration is never resumed. Only
        fields away from their default count, so an option added with its default keeps
        the fingerprints of the runs made before it."""
        fields = {
            f.name: getattr(self, f.name)
            for f in dataclasses.fields(self)
            if f.metadata.get("fingerprint", True) and getattr(self, f.name) != f.default
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
    # Reads real handwriting, not only MNIST's test split: 99% on MNIST's test split and
    # 90% on real digits that are not MNIST (benchmarks/bench_real_digits.py) within 5
    # minutes; a wide net, deskewed, trained on distorted digits (rotated, sheared,
    # moved, strokes thickened or thinned) for 20 epochs. Elastic distortion cost more
    # time than it gave on real digits (benchmarks/README.md).
    "robust": dict(
        _FAST,
        width=1024,
        learning_rate=3e-3,
        epochs=20,
        deskew=True,
        augment=0.75,
        rotation=20.0,
        shear=0.25,
        thickness=1.0,
        elastic_alpha=0.0,
    ),
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
    "dropout",
    "batch_norm",
)
DEPTH_RANGE = (1, 4)
BATCH_SIZE_CHOICES = (64, 128, 256, 512)
LABEL_SMOOTHING_CHOICES = (0.0, 0.05, 0.1, 0.2)
DROPOUT_CHOICES = (0.0, 0.1, 0.2, 0.3, 0.5)
WIDTH_STEP = 32  # the width's grid in a search
SEARCH_BOUNDS = {  # the fields that bound a searched value's range
    "learning_rate": ("lr_min", "lr_max"),
    "width": ("width_min", "width_max"),
    "epochs": ("epochs_min",),
}


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
        f"label_smoothing: {LABEL_SMOOTHING_CHOICES}; dropout: {DROPOUT_CHOICES}; "
        "batch_norm: off or on",
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
        if self.summary:
            self._check_only_naming_the_project()
            return self
        self.check_data()
        if self.val_split == NO_SPLIT:
            raise RelunetError(
                "a search scores each trial on the validation split, so val_split must "
                "name a split. Received: 'none'."
            )
        check_split(self.full_train_split, "full_train_split")
        self.check_model()
        self.check_optim()
        check_choice("tuner", self.tuner, TUNERS)
        for name in ("max_trials", "executions_per_trial", "patience", "width_min"):
            check_count(name, getattr(self, name))
        check_count("width_max", self.width_max)
        check_count("epochs_min", self.epochs_min)
        check_positive("lr_min", self.lr_min)
        check_positive("lr_max", self.lr_max)
        if not self.search:
            raise RelunetError("search must name at least one hyperparameter. Received: ''.")
        for name in self.search:
            check_choice("search", name, SEARCHABLE)
        self._check_search_uses_every_value()
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
        if self.tuner == "hyperband" and "epochs" in self.search:
            raise RelunetError(
                "hyperband decides each trial's epochs itself, so search cannot "
                "name epochs with it; --epochs is its maximum."
            )
        if not self.project_name or "/" in self.project_name or self.project_name in (".", ".."):
            raise RelunetError(
                f"project_name must be a plain folder name. Received: {self.project_name!r}."
            )
        check_verbose(self.verbose)
        depth = DEPTH_RANGE[1] if "depth" in self.search else self.depth
        batch_size = max(BATCH_SIZE_CHOICES) if "batch_size" in self.search else self.batch_size
        check_fits_in_memory(self.width_max, depth, batch_size)  # the largest trial
        return self

    def _check_search_uses_every_value(self) -> None:
        """A fixed value that the search draws instead, or a range of a value it does not
        search, would change nothing: refuse it rather than ignore it."""
        defaults = field_defaults(TuneConfig)
        for name in self.search:
            if name != "epochs" and getattr(self, name) != defaults[name]:
                raise RelunetError(
                    f"{name} is searched, so a fixed {name} would be ignored; leave it out "
                    f"or leave {name} out of search. Received: {name}={getattr(self, name)!r}."
                )
        for searched, bounds in SEARCH_BOUNDS.items():
            for bound in bounds:
                if searched not in self.search and getattr(self, bound) != defaults[bound]:
                    raise RelunetError(
                        f"{bound} bounds the search of {searched}, which search does not "
                        f"name, so it would be ignored. Received: {bound}="
                        f"{getattr(self, bound)!r}, search={','.join(self.search)}."
                    )

    def _check_only_naming_the_project(self) -> None:
        """--summary reads an existing search: any flag but its folder would be ignored."""
        defaults = field_defaults(TuneConfig)
        for name in defaults.keys() - {"summary", "directory", "project_name"}:
            if getattr(self, name) != defaults[name]:
                raise RelunetError(
                    "summary prints an existing search and trains nothing, so only "
                    f"directory and project_name go with it. Received: {name}="
                    f"{getattr(self, name)!r}."
                )

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
class CompareConfig(OptimConfig, DataConfig):
    """`relunet compare`: networks side by side, trained from the same seeds on the same
    batches in the same order. A grid of layer settings (every combination of the
    activations, inits, depths, widths, dropouts and batch norms given), or a named
    series with its own networks and settings; each over `seeds` seeds."""

    # Unset (None), these take the series' own settings, else compare's defaults. (Help
    # text goes through argparse's %-formatting, hence %%.)
    train_split: str | None = option(
        None,
        "tfds split to train on (default: train[:90%%]; with --series, the series' own: "
        "train for lab10)",
        metavar="SPLIT",
    )
    val_split: str | None = option(
        None,
        "tfds split to validate on (default: train[90%%:]; with --series, the series' own: "
        "none for lab10)",
        metavar="SPLIT",
    )
    epochs: int | None = option(
        None,
        "passes over the training split (default: 5; with --series, the series' own: 1 for lab10)",
    )
    series: str | None = option(
        None,
        "train a named series instead of a grid: lab10 is Deep Learning Zero To All's "
        "lab-10 notebooks (tf_2.x), six networks set beside the test accuracies they "
        "printed, with a sentence per lesson",
        choices=tuple(SERIES),
        metavar="NAME",
    )
    activations: tuple[str, ...] = option(ACTIVATIONS, "the activations compared", metavar="LIST")
    inits: tuple[str, ...] = option(
        ("random_normal",), f"the kernel initializers compared, from {', '.join(INITS)}"
    )
    depths: tuple[int, ...] = option(
        (2,), "the hidden-layer counts compared, e.g. 2,6", metavar="LIST"
    )
    widths: tuple[int, ...] = option((256,), "the widths (units per hidden layer) compared")
    dropouts: tuple[float, ...] = option(
        (0.0,), "the dropout rates compared (after each hidden layer; 0 keeps every unit)"
    )
    batch_norms: tuple[str, ...] = option(
        ("off",), "batch normalization compared: off, on, or off,on"
    )
    seeds: int = option(
        1,
        "runs per network, from seeds --seed, --seed + 1, ...; above 1 each row gives "
        "the mean and the spread (min-max up to 5 seeds, else the standard deviation)",
    )
    out: str | None = option(
        None, "output folder (default: runs/compare-<timestamp>)", metavar="DIR"
    )
    verbose: int | None = option(None, "Keras progress output: 0, 1 or 2")
    # Off, unlike train: each run is a new model to compile (measured on full MNIST,
    # depths 2 and 6, 5 epochs: 139 s of training with XLA, 112 s without).
    jit_compile: str = option("off", "XLA", choices=JIT_MODES)

    AXES = ("activations", "inits", "depths", "widths", "dropouts", "batch_norms")
    MAX_SEEDS = 100

    def __post_init__(self) -> None:
        own = SERIES[self.series].training if self.series in SERIES else {}
        defaults = {**field_defaults(DataConfig), **field_defaults(OptimConfig)}
        for name in ("train_split", "val_split", "epochs"):
            if getattr(self, name) is None:
                setattr(self, name, own.get(name, defaults[name]))
        # The command line hands list items over as text.
        self.dropouts = tuple(self._number(d, "dropouts") for d in self.dropouts)
        self.batch_norms = tuple(
            {True: "on", False: "off"}.get(b, b) if isinstance(b, bool) else b
            for b in self.batch_norms
        )

    def validate(self) -> CompareConfig:
        """Raise RelunetError naming the first bad field; return self so calls chain."""
        if self.series is not None:
            self._check_series()
        for name in self.AXES:
            if not getattr(self, name):
                raise RelunetError(f"{name} must name at least one value.")
        for activation in self.activations:
            check_choice("activations", activation, ACTIVATIONS)
        for init in self.inits:
            check_choice("inits", init, INITS)
        for depth in self.depths:
            check_count("depths", depth)
        for width in self.widths:
            check_count("widths", width)
        for dropout in self.dropouts:
            if not 0 <= dropout < 1:
                raise RelunetError(f"dropouts must each lie in [0, 1). Received: {dropout!r}.")
        for batch_norm in self.batch_norms:
            check_choice("batch_norms", batch_norm, ("off", "on"))
        self.check_data()
        if self.val_split == NO_SPLIT and self.series is None:
            raise RelunetError(
                "compare plots validation accuracy, so val_split must name a "
                "split. Received: 'none'."
            )
        self.check_optim()
        check_count("seeds", self.seeds, self.MAX_SEEDS)
        if self.seed + self.seeds - 1 > SEED_MAX:
            raise RelunetError(
                f"seeds runs from seed to seed + seeds - 1, which must not exceed {SEED_MAX}. "
                f"Received: seed={self.seed}, seeds={self.seeds}."
            )
        check_verbose(self.verbose)
        if self.series is None:
            check_fits_in_memory(max(self.widths), max(self.depths), self.batch_size)
        else:
            networks = SERIES[self.series].networks
            for network in networks:
                check_fits_in_memory(network.width, network.depth, self.batch_size)
        return self

    def _check_series(self) -> None:
        """A series sets each network's layers, and validates on nothing: a grid's axis,
        or a validation split, would change nothing."""
        check_choice("series", self.series, tuple(SERIES))
        defaults = field_defaults(CompareConfig)
        for name in self.AXES:
            if getattr(self, name) != defaults[name]:
                raise RelunetError(
                    f"the series {self.series} sets each network's layers itself, so {name} "
                    f"would be ignored; leave it out, or leave out --series. Received: "
                    f"{name}={','.join(map(str, getattr(self, name)))}."
                )
        if self.val_split != NO_SPLIT:
            raise RelunetError(
                f"the series {self.series} scores each network on test_split and picks no "
                "epoch, so a validation split would change nothing; leave val_split out. "
                f"Received: {self.val_split!r}."
            )

    @staticmethod
    def _number(value: Any, name: str) -> Any:
        """A list item given as text, as a number; anything else as it is."""
        if isinstance(value, str):
            try:
                return float(value)
            except ValueError:
                raise RelunetError(
                    f"{name} must be a comma-separated list of numbers. Received: {value!r}."
                ) from None
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise RelunetError(f"{name} must be numbers. Received: {value!r}.")
        return value
