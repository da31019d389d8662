"""`relunet compare`'s config: the networks compared (a grid, or a named series) and seeds.

    CompareConfig   Data + Optim, plus the layer settings compared (or a series) and seeds

`validate()` checks the values; the checks of paths and files are `relunet.preflight`'s.
"""

from __future__ import annotations

from dataclasses import dataclass

from relunet.base.errors import RelunetError
from relunet.base.values import SEED_MAX, check_choice, check_count, check_fits_in_memory
from relunet.config.fields import (
    ACTIVATIONS,
    INITS,
    JIT_MODES,
    NO_SPLIT,
    DataConfig,
    OptimConfig,
    check_numbers,
    check_verbose,
    field_defaults,
    option,
)
from relunet.config.series import SERIES


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
        (0.0,),
        "the dropout rates compared (after each hidden layer; 0 keeps every unit)",
        interval="[0, 1)",
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
        """The unset data and epochs: the series' own where it has them, else compare's."""
        own = SERIES[self.series].training if self.series in SERIES else {}
        defaults = {**field_defaults(DataConfig), **field_defaults(OptimConfig)}
        for name in ("train_split", "val_split", "epochs"):
            if getattr(self, name) is None:
                setattr(self, name, own.get(name, defaults[name]))

    def validate(self) -> CompareConfig:
        """Raise RelunetError naming the first bad field; return self so calls chain."""
        check_numbers(self)
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
