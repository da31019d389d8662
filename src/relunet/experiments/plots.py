"""The lesson's pictures, drawn with matplotlib off-screen (no display needed).

Each picture draws the comparison's cells (a network over its seeds: mean, and the
spread where there are several). A grid of activations and depths keeps one colour per
activation and one line style per depth, in every figure, so the eye can follow a run
from one picture to the next; other cells (a series, a grid of more settings) get a
colour each. Each title says what was trained.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt
import numpy as np
from matplotlib.ticker import MaxNLocator

from relunet.experiments.seeds import RANGE_UP_TO

COLOURS = {"relu": "#1f77b4", "sigmoid": "#d62728", "leaky_relu": "#2ca02c"}
PALETTE = plt.get_cmap("tab10").colors  # a colour per cell, where activations do not tell
STYLES = ["-", "--", ":", "-."]  # by depth, in the order the depths were given
LEAKY_SLOPE = 0.2  # Keras's LeakyReLU default negative slope


def _style(cell: dict[str, Any], cells: list[dict[str, Any]]) -> dict[str, Any]:
    if len({(c["activation"], c["depth"]) for c in cells}) < len(cells) or cell.get("network"):
        return {"color": PALETTE[cells.index(cell) % len(PALETTE)], "label": cell["label"]}
    depths = list(dict.fromkeys(c["depth"] for c in cells))
    return {
        "color": COLOURS.get(cell["activation"], "black"),
        "linestyle": STYLES[depths.index(cell["depth"]) % len(STYLES)],
        "label": cell["label"],
    }


def first_step_grad_norms(cells: list[dict[str, Any]], path: Path, what: str) -> None:
    """Each Dense kernel's gradient norm at the first step, input side to output side
    (the seeds' mean; shaded from their least to their most where there are several)."""
    fig, ax = plt.subplots(figsize=(8.5, 4.8))
    for cell in cells:
        norms = cell["grad_norms_at_init"]
        layers = range(1, len(norms) + 1)
        style = _style(cell, cells)
        ax.plot(layers, norms, marker="o", **style)
        if len(cell.get("seeds", ())) > 1:
            low, high = cell["grad_norms_at_init_min"], cell["grad_norms_at_init_max"]
            ax.fill_between(layers, low, high, color=style["color"], alpha=0.15, linewidth=0)
    ax.set_yscale("log")
    ax.set(
        xlabel="layer, from the input (1) to the logits (last)",
        ylabel="gradient norm at the first step (log)",
        title=f"Gradient reaching each layer before any update\n{what}",
    )
    _finish(ax)
    _save_figure(fig, path)


def test_accuracy(
    cells: list[dict[str, Any]], path: Path, what: str, source: str | None = None
) -> None:
    """Each cell's test accuracy: the seeds' mean, with their spread as error bars (min
    to max for a few seeds, else ± one standard deviation); with `source`, each network's
    printed figure beside it."""
    fig, ax = plt.subplots(figsize=(8.5, 0.9 + 0.5 * len(cells) + 1.2))
    n = len(cells[0]["seeds"])
    for i, cell in enumerate(cells):
        mean = cell["test_accuracy"]
        if n <= RANGE_UP_TO:
            error = [[mean - cell["test_accuracy_min"]], [cell["test_accuracy_max"] - mean]]
        else:
            error = [[cell["test_accuracy_sd"]], [cell["test_accuracy_sd"]]]
        colour = _style(cell, cells)["color"]
        ax.errorbar(100 * mean, i, xerr=100 * np.array(error), fmt="o", color=colour, capsize=4)
        if source and cell.get("printed") is not None:
            label = "the notebook's printed figure (one run)" if i == 0 else None
            ax.plot(100 * cell["printed"], i, "D", color="black", fillstyle="none", label=label)
    ax.set_yticks(range(len(cells)), [cell["label"] for cell in cells], fontsize=8)
    ax.invert_yaxis()
    spread = "min to max" if n <= RANGE_UP_TO else "± one standard deviation"
    title = (
        f"Test accuracy, mean of {n} seeds ({spread} as error bars)" if n > 1 else "Test accuracy"
    )
    ax.set(xlabel="test accuracy (%)", title=f"{title}\n{what}")
    ax.grid(alpha=0.3, axis="x")
    if source:
        below = (0.5, -0.12 - 1 / (len(cells) + 4))  # under the axis label
        ax.legend(loc="upper center", bbox_to_anchor=below, fontsize=8, title=source)
    _save_figure(fig, path)


def activation_derivatives(path: Path) -> None:
    """sigma'(x) against relu'(x) and leaky_relu'(x): what backpropagation multiplies by."""
    x = np.linspace(-6, 6, 1201)
    sigmoid = 1 / (1 + np.exp(-x))
    curves = {
        "sigmoid": sigmoid * (1 - sigmoid),
        "relu": (x > 0).astype(float),
        "leaky_relu": np.where(x > 0, 1.0, LEAKY_SLOPE),
    }
    fig, ax = plt.subplots(figsize=(8.5, 4.2))
    # Where ReLU and leaky ReLU agree (x > 0) the dashed leaky line lies on the wide
    # ReLU one.
    widths, dashes = {"relu": 4}, {"leaky_relu": "--"}
    for name, derivative in curves.items():
        ax.plot(
            x,
            derivative,
            color=COLOURS[name],
            label=f"{name}'(x)",
            linewidth=widths.get(name, 2),
            linestyle=dashes.get(name, "-"),
        )
    ax.axhline(0.25, color=COLOURS["sigmoid"], linewidth=0.8, linestyle=":")
    ax.annotate("sigmoid' never exceeds 0.25", (1.2, 0.27), color=COLOURS["sigmoid"], fontsize=9)
    ax.set(
        xlabel="x (a unit's input)",
        ylabel="derivative",
        ylim=(-0.05, 1.1),
        title="Each layer multiplies the gradient by its activation's derivative",
    )
    ax.grid(alpha=0.3)
    ax.legend(loc="center left", bbox_to_anchor=(1.02, 0.5), fontsize=9)
    _save_figure(fig, path)


def val_accuracy(cells: list[dict[str, Any]], path: Path, what: str) -> None:
    """Validation accuracy per epoch, one line per cell (the seeds' mean)."""
    fig, ax = plt.subplots(figsize=(8.5, 4.5))
    for cell in cells:
        values = cell["history"]["val_accuracy"]
        ax.plot(_epoch_numbers(values), values, marker="o", **_style(cell, cells))
    ax.set(xlabel="epoch", ylabel="validation accuracy", title=f"Validation accuracy\n{what}")
    _finish(ax)
    _save_figure(fig, path)


def grad_norms_per_layer(cells: list[dict[str, Any]], path: Path, what: str) -> None:
    """Per cell, each Dense kernel's mean gradient norm per epoch, log scale; layers
    shaded from the input side (dark) to the logits (light). One column per activation,
    one row per combination of the other settings (for a grid of activations and
    depths: a row per depth)."""
    columns = len(dict.fromkeys(cell["activation"] for cell in cells))
    rows = -(-len(cells) // columns)
    fig, axes = plt.subplots(
        rows, columns, squeeze=False, sharey=True, figsize=(4.3 * columns, 3.4 * rows + 0.6)
    )
    for i, cell in enumerate(cells):
        ax = axes[i // columns, i % columns]
        layers = [key for key in cell["history"] if key.startswith("grad_norm/")]
        shades = np.linspace(1.0, 0.35, len(layers))
        base = matplotlib.colors.to_rgb(COLOURS.get(cell["activation"], "black"))
        for key, shade in zip(layers, shades, strict=True):
            values = cell["history"][key]
            ax.plot(
                _epoch_numbers(values),
                values,
                marker=".",
                label=key.split("/", 1)[1],
                color=tuple(shade * c + (1 - shade) for c in base),
            )
        ax.set_yscale("log")
        ax.set(title=cell["label"], xlabel="epoch")
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))
        ax.grid(alpha=0.3, which="both")
        ax.legend(fontsize=6, ncol=2)
    for ax in axes[:, 0]:
        ax.set_ylabel("mean gradient norm (log)")
    fig.suptitle(f"Gradient norm of each Dense kernel per epoch (mean over its batches)\n{what}")
    _save_figure(fig, path)


def _epoch_numbers(values: list[float]) -> list[int]:
    return list(range(1, len(values) + 1))


def _finish(ax) -> None:
    ax.xaxis.set_major_locator(MaxNLocator(integer=True))
    ax.grid(alpha=0.3, which="both")
    ax.legend(loc="center left", bbox_to_anchor=(1.02, 0.5), fontsize=8)


def _save_figure(fig, path: Path) -> None:
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)
