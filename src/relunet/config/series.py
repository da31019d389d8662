"""Named series of networks, and how several seeds' results are read.

A series is a lab's sequence of notebooks as data: each network's layers, the test
accuracy its notebook printed, and the lessons (one change from one network to the
next). `relunet compare --series lab10` trains them side by side (relunet.experiments.compare);
this module holds what they are and how their results read: a cell's mean and spread
over its seeds, and a plain sentence per lesson saying whether its difference is
larger than that spread. No TensorFlow: the config checks a series' name here.
"""

from __future__ import annotations

import statistics
from dataclasses import dataclass, field
from typing import Any

# Up to this many seeds a cell's spread is its range (min to max), which is all that
# few values can say; above it, their standard deviation.
RANGE_UP_TO = 5

INIT_NAMES = {
    "random_normal": "RandomNormal(0.05)",
    "glorot_uniform": "Xavier (Glorot uniform)",
    "he_normal": "He normal",
}


@dataclass(frozen=True)
class Network:
    """One notebook's network: its layers and the accuracy it printed."""

    lab: str  # the notebook's number, e.g. "10-1-2"
    topic: str  # the end of its file name: lab-<lab>-mnist_nn_<topic>.ipynb
    activation: str
    depth: int
    width: int
    init: str
    dropout: float = 0.0
    batch_norm: bool = False
    printed: float | None = None  # test accuracy the notebook printed after its last step

    @property
    def notebook(self) -> str:
        return f"lab-{self.lab}-mnist_nn_{self.topic}.ipynb"

    def layers(self) -> dict[str, Any]:
        """The network as ModelConfig fields."""
        return {
            "activation": self.activation,
            "depth": self.depth,
            "width": self.width,
            "init": self.init,
            "dropout": self.dropout,
            "batch_norm": self.batch_norm,
        }

    def describe(self) -> str:
        """'relu, 4x512, Xavier (Glorot uniform), dropout 0.5'."""
        parts = [self.activation, f"{self.depth}x{self.width}", INIT_NAMES[self.init]]
        if self.dropout:
            parts.append(f"dropout {self.dropout:g}")
        if self.batch_norm:
            parts.append("batch norm")
        return ", ".join(parts)


@dataclass(frozen=True)
class Lesson:
    """One change from one network of a series to the next."""

    before: str  # a Network's lab
    after: str
    change: str  # what `after` does differently, as a phrase


@dataclass(frozen=True)
class Series:
    name: str
    source: str  # where the printed figures come from
    networks: tuple[Network, ...]
    lessons: tuple[Lesson, ...]
    # The settings the series trains with where the command line gives none.
    training: dict[str, Any] = field(default_factory=dict)

    def network(self, lab: str) -> Network:
        return next(n for n in self.networks if n.lab == lab)


# Deep Learning Zero To All, season 2, tf_2.x: six notebooks, each a copy of the one
# before with one change, all trained one epoch (468 steps of 128 images with
# drop_remainder, of all 60,000) with Adam 1e-3, printing the test accuracy after
# every step; `printed` is the last of those lines. (Their closing headings give other
# figures for five of them: 96.22, 96.55, 96.88, 95.91 and 97.51%, from other runs.)
LAB10 = Series(
    name="lab10",
    source="Deep Learning Zero To All, season 2, lab-10-*_mnist_*.ipynb (tf_2.x)",
    networks=(
        Network("10-1-1", "softmax", "sigmoid", 2, 256, "random_normal", printed=0.9241),
        Network("10-1-2", "relu", "relu", 2, 256, "random_normal", printed=0.9558),
        Network("10-2-1", "xavier", "relu", 2, 256, "glorot_uniform", printed=0.9607),
        Network("10-2-2", "deep", "relu", 4, 512, "glorot_uniform", printed=0.9684),
        Network("10-3", "dropout", "relu", 4, 512, "glorot_uniform", dropout=0.5, printed=0.9562),
        Network(
            "10-4", "batchnorm", "relu", 4, 512, "glorot_uniform", batch_norm=True, printed=0.9685
        ),
    ),
    lessons=(
        Lesson("10-1-1", "10-1-2", "ReLU instead of sigmoid"),
        Lesson("10-1-2", "10-2-1", "Xavier (Glorot uniform) init instead of RandomNormal(0.05)"),
        Lesson("10-2-1", "10-2-2", "4 layers of 512 instead of 2 of 256"),
        Lesson("10-2-2", "10-3", "dropout 0.5 after each hidden layer"),
        Lesson("10-2-2", "10-4", "batch normalization before each ReLU"),
    ),
    # All 60,000 training images, scored on the test split, one epoch: the notebooks'
    # own protocol. One epoch picks no best epoch, so no validation split is held out.
    training={"train_split": "train", "val_split": "none", "epochs": 1},
)
SERIES = {LAB10.name: LAB10}


# -- reading several seeds ---------------------------------------------------------------


def spread(name: str, values: list[float]) -> dict[str, float]:
    """`name` (the mean), `name_min`, `name_max` and `name_sd` (the sample standard
    deviation, 0 for one value): how a cell holds a measure over its seeds."""
    return {
        name: statistics.fmean(values),
        f"{name}_min": min(values),
        f"{name}_max": max(values),
        f"{name}_sd": statistics.stdev(values) if len(values) > 1 else 0.0,
    }


def interval(cell: dict[str, Any], name: str = "test_accuracy") -> tuple[float, float]:
    """The values a cell's seeds cover: min to max for a few, mean ± sd for more."""
    if len(cell["seeds"]) <= RANGE_UP_TO:
        return cell[f"{name}_min"], cell[f"{name}_max"]
    return cell[name] - cell[f"{name}_sd"], cell[name] + cell[f"{name}_sd"]


def spread_header(seeds: int) -> str:
    return "min-max" if seeds <= RANGE_UP_TO else "sd"


def spread_text(cell: dict[str, Any], name: str = "test_accuracy") -> str:
    if len(cell["seeds"]) <= RANGE_UP_TO:
        return f"{cell[f'{name}_min']:.4f}-{cell[f'{name}_max']:.4f}"
    return f"±{cell[f'{name}_sd']:.4f}"


def larger_than_spread(before: dict[str, Any], after: dict[str, Any]) -> bool | None:
    """Whether two cells' test accuracies lie apart: their intervals do not overlap.
    None with one seed, which has no spread."""
    if len(after["seeds"]) == 1:
        return None
    (low_a, high_a), (low_b, high_b) = interval(before), interval(after)
    return high_a < low_b or high_b < low_a


def lesson_sentence(
    series: Series, lesson: Lesson, before: dict[str, Any], after: dict[str, Any]
) -> str:
    """The lesson's difference in test accuracy, the notebooks' own, and whether it is
    larger than the seeds' spread, in one sentence."""
    points = 100 * (after["test_accuracy"] - before["test_accuracy"])
    said = f"{lesson.after} vs {lesson.before}, {lesson.change}: {points:+.2f} points"
    printed = series.network(lesson.after).printed, series.network(lesson.before).printed
    if None not in printed:
        said += f" (the notebooks: {100 * (printed[0] - printed[1]):+.2f})"
    apart = larger_than_spread(before, after)
    if apart is None:
        return f"{said}; one seed has no spread to measure it against (use --seeds 3 or more)."
    n = len(after["seeds"])
    what = "ranges" if n <= RANGE_UP_TO else "mean ± sd intervals"
    both = " and ".join(
        "{:.2f}-{:.2f}%".format(*(100 * v for v in interval(cell))) for cell in (before, after)
    )
    if apart:
        return f"{said}; larger than the spread over {n} seeds: their {what} {both} do not overlap."
    return (
        f"{said}; not larger than the spread over {n} seeds: their {what} {both} overlap, "
        "so one run of each cannot tell them apart."
    )


def summarize(cell: dict[str, Any], runs: list[dict[str, Any]]) -> dict[str, Any]:
    """A cell over its seeds: accuracies as mean, min, max and sd; gradients and
    histories as means (the first step's also as each layer's min and max)."""
    summary = {**cell, "seeds": [r["seed"] for r in runs], "epochs": runs[0]["epochs"]}
    summary.update(spread("test_accuracy", [r["test_accuracy"] for r in runs]))
    if runs[0]["val_accuracy"] is not None:
        summary.update(spread("val_accuracy", [r["val_accuracy"] for r in runs]))
    else:
        summary["val_accuracy"] = None
    summary["seconds"] = round(statistics.fmean([r["seconds"] for r in runs]), 2)
    for key in (
        "grad_norm_first_layer_at_init",
        "grad_norm_first_layer_first_epoch",
        "grad_norm_first_layer_last_epoch",
    ):
        summary[key] = statistics.fmean([r[key] for r in runs])
    by_layer = list(zip(*(r["grad_norms_at_init"] for r in runs), strict=True))
    summary["grad_norms_at_init"] = [statistics.fmean(layer) for layer in by_layer]
    summary["grad_norms_at_init_min"] = [min(layer) for layer in by_layer]
    summary["grad_norms_at_init_max"] = [max(layer) for layer in by_layer]
    summary["history"] = {
        key: [
            statistics.fmean(epoch)
            for epoch in zip(*(r["history"][key] for r in runs), strict=True)
        ]
        for key in runs[0]["history"]
    }
    return summary


def lessons(name: str, cells: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """A series' lessons, each with its difference in test accuracy and its sentence."""
    series = SERIES[name]
    by_lab = {cell["network"]: cell for cell in cells}
    found = []
    for lesson in series.lessons:
        before, after = by_lab[lesson.before], by_lab[lesson.after]
        found.append(
            {
                "before": lesson.before,
                "after": lesson.after,
                "change": lesson.change,
                "difference": after["test_accuracy"] - before["test_accuracy"],
                "larger_than_spread": larger_than_spread(before, after),
                "sentence": lesson_sentence(series, lesson, before, after),
            }
        )
    return found
