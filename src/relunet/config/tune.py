"""`relunet tune`'s config: the fixed values every trial uses, and the search.

    TuneConfig      Data + Model + Optim + Augment as the fixed values, plus the search space

`validate()` checks the values; the checks of paths and files are `relunet.preflight`'s.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Any

from relunet.base.errors import RelunetError
from relunet.base.values import (
    check_choice,
    check_count,
    check_fits_in_memory,
    check_split,
)
from relunet.config.fields import (
    JIT_MODES,
    NO_SPLIT,
    AugmentConfig,
    DataConfig,
    ModelConfig,
    OptimConfig,
    check_numbers,
    check_verbose,
    differences,
    field_defaults,
    option,
)

TUNERS = ("random", "hyperband", "bayesian")
# What picks the best trial (higher is better): validation accuracy, or the reading score
# on --val-split's digits distorted and on non-digit shapes (relunet.experiments.reading_score).
OBJECTIVES = ("val_accuracy", "reading")
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
class TuneConfig(AugmentConfig, OptimConfig, ModelConfig, DataConfig):  # train's order
    """Everything `relunet tune` needs; the model and optimiser fields are the values
    every trial uses unless they are searched, the augmentation's how every trial and
    the retrain train (as `relunet train --preset robust` does, with its values)."""

    tuner: str = option("random", "the keras-tuner search", choices=TUNERS)
    epochs: int = option(
        5,
        "epochs of a trial: hyperband's max_epochs, and with --search "
        "epochs the most a trial draws",
    )
    objective: str = option(
        "val_accuracy",
        "what picks the best trial: val_accuracy, or reading (--val-split's digits read "
        "right when distorted as --preset robust trains, and non-digit shapes answered "
        "'not a digit'; docs/tuning.md)",
        choices=OBJECTIVES,
    )
    max_trials: int = option(10, "trials in all; for hyperband a cap on its brackets")
    executions_per_trial: int = option(1, "fits per trial, averaged")
    patience: int = option(2, "EarlyStopping patience on val_accuracy, in epochs")
    lr_min: float = option(
        1e-4, "smallest learning rate searched (log-uniform)", metavar="LR", interval="(0, inf)"
    )
    lr_max: float = option(
        1e-2, "largest learning rate searched", metavar="LR", interval="(0, inf)"
    )
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
    backup_every: int = option(
        100, "steps between a trial's backups, besides one per epoch (a killed trial continues)"
    )
    summary: bool = option(
        False, "print the table of an existing search (and write its summary files) and stop"
    )
    verbose: int | None = option(None, "Keras progress output: 0, 1 or 2")
    # Off, unlike train: every trial is a new model to compile, and for trials of a few
    # epochs XLA's compile time outweighs its speed (measured: 8 trials of 3 epochs took
    # 142 s with it, 106 s without).
    jit_compile: str = option("off", "XLA", choices=JIT_MODES)

    def validate(self) -> TuneConfig:
        """Raise RelunetError naming the first bad field; return self so calls chain."""
        check_numbers(self)
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
        self.check_augment()
        check_choice("tuner", self.tuner, TUNERS)
        check_choice("objective", self.objective, OBJECTIVES)
        if self.objective == "reading":
            self._check_reading_reads_training_digits()
        for name in ("max_trials", "executions_per_trial", "patience", "width_min", "backup_every"):
            check_count(name, getattr(self, name))
        check_count("width_max", self.width_max)
        check_count("epochs_min", self.epochs_min)
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

    def _check_reading_reads_training_digits(self) -> None:
        """The reading objective distorts val_split's MNIST digits: they must be
        training digits, never an image anyone measures with."""
        if self.dataset != "mnist":
            raise RelunetError(
                "the reading objective scores reading digits, so dataset must be mnist. "
                f"Received: dataset={self.dataset!r}."
            )
        if any(part.split("[")[0].strip() != "train" for part in self.val_split.split("+")):
            raise RelunetError(
                "the reading objective is scored on val_split's digits, which must "
                "come from MNIST's training split (never an image anyone measures with). "
                f"Received: val_split={self.val_split!r}."
            )

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
    "backup_every",
)
