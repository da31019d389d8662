"""The comparison's pictures, drawn with matplotlib off-screen (no display needed)."""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt
from matplotlib.ticker import MaxNLocator


def _label(result: dict[str, Any]) -> str:
    return f"{result['activation']}, depth {result['depth']}"


def _epochs(values: list[float]) -> list[int]:
    return list(range(1, len(values) + 1))


def val_accuracy(results: list[dict[str, Any]], path: Path) -> None:
    """Validation accuracy per epoch, one line per run."""
    fig, ax = plt.subplots(figsize=(8.5, 4.5))
    for r in results:
        values = r["history"]["val_accuracy"]
        ax.plot(_epochs(values), values, marker="o", label=_label(r))
    ax.set(xlabel="epoch", ylabel="validation accuracy", title="Validation accuracy")
    _finish(ax)
    _save(fig, path)


def grad_norms_per_layer(results: list[dict[str, Any]], path: Path) -> None:
    """Per run, each Dense kernel's mean gradient norm per epoch, log scale.

    Layers are coloured from the input side (dark) to the logits (light)."""
    columns = min(3, len(results))
    rows = math.ceil(len(results) / columns)
    fig, axes = plt.subplots(
        rows, columns, figsize=(4.5 * columns, 3.6 * rows), squeeze=False, sharey=True
    )
    for ax, r in zip(axes.flat, results, strict=False):  # the grid may have spare axes
        layers = [key for key in r["history"] if key.startswith("grad_norm/")]
        colours = plt.cm.viridis([i / max(1, len(layers) - 1) * 0.9 for i in range(len(layers))])
        for key, colour in zip(layers, colours, strict=True):
            values = r["history"][key]
            ax.plot(_epochs(values), values, marker=".", color=colour, label=key.split("/", 1)[1])
        ax.set_yscale("log")
        ax.set(title=_label(r), xlabel="epoch")
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))
        ax.grid(alpha=0.3, which="both")
        ax.legend(fontsize=6, ncol=2)
    for ax in axes[:, 0]:
        ax.set_ylabel("gradient norm (log)")
    for ax in axes.flat[len(results) :]:
        ax.axis("off")
    fig.suptitle("Gradient norm of each Dense kernel, mean over the epoch's batches")
    _save(fig, path)


def first_layer_grad_norm(results: list[dict[str, Any]], path: Path) -> None:
    """The first layer's gradient norm per epoch for every run on one log axis."""
    fig, ax = plt.subplots(figsize=(8.5, 4.5))
    for r in results:
        values = r["history"]["grad_norm/dense_0"]
        ax.plot(_epochs(values), values, marker="o", label=_label(r))
    ax.set_yscale("log")
    ax.set(
        xlabel="epoch",
        ylabel="gradient norm of dense_0 (log)",
        title="How much gradient reaches the first layer",
    )
    _finish(ax)
    _save(fig, path)


def _finish(ax) -> None:
    ax.xaxis.set_major_locator(MaxNLocator(integer=True))
    ax.grid(alpha=0.3, which="both")
    ax.legend(loc="center left", bbox_to_anchor=(1.02, 0.5), fontsize=8)


def _save(fig, path: Path) -> None:
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)
