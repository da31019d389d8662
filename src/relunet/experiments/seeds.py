"""How a comparison's cells read over their seeds: each measure's mean and spread, and
a plain sentence per lesson of a series saying whether its difference is larger than
that spread. No TensorFlow."""

from __future__ import annotations

import statistics
from typing import Any

from relunet.config.series import SERIES, Lesson, Series

# Up to this many seeds a cell's spread is its range (min to max), which is all that
# few values can say; above it, their standard deviation.
RANGE_UP_TO = 5


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


def over_seeds(cell: dict[str, Any], runs: list[dict[str, Any]]) -> dict[str, Any]:
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
