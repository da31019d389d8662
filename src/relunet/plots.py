"""The lesson's pictures, drawn with matplotlib off-screen (no display needed).

One colour per activation and one line style per depth, in every figure, so the eye
can follow a run from one picture to the next; each title says what was trained.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt
import numpy as np
from matplotlib.ticker import MaxNLocator

COLOURS = {"relu": "#1f77b4", "sigmoid": "#d62728", "leaky_relu": "#2ca02c"}
STYLES = ["-", "--", ":", "-."]  # by depth, in the order the depths were given
LEAKY_SLOPE = 0.2  # Keras's LeakyReLU default negative slope


def _style(result: dict[str, Any], depths: list[int]) -> dict[str, Any]:
    return {
        "color": COLOURS.get(result["activation"], "black"),
        "linestyle": STYLES[depths.index(result["depth"]) % len(STYLES)],
        "label": f"{result['activation']}, depth {result['depth']}",
    }


def _depths(results: list[dict[str, Any]]) -> list[int]:
    return list(dict.fromkeys(r["depth"] for r in results))


def first_step_grad_norms(results: list[dict[str, Any]], path: Path, what: str) -> None:
    """Each Dense kernel's gradient norm at the first step, input side to output side."""
    fig, ax = plt.subplots(figsize=(8.5, 4.8))
    depths = _depths(results)
    for r in results:
        norms = r["grad_norms_at_init"]
        ax.plot(range(1, len(norms) + 1), norms, marker="o", **_style(r, depths))
    ax.set_yscale("log")
    ax.set(
        xlabel="layer, from the input (1) to the logits (last)",
        ylabel="gradient norm at the first step (log)",
        title=f"Gradient reaching each layer before any update\n{what}",
    )
    _finish(ax)
    _save(fig, path)


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
    # Where ReLU and leaky ReLU agree (x > 0) the dashed leaky line lies on the wide ReLU one.
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
    _save(fig, path)


def val_accuracy(results: list[dict[str, Any]], path: Path, what: str) -> None:
    """Validation accuracy per epoch, one line per run."""
    fig, ax = plt.subplots(figsize=(8.5, 4.5))
    depths = _depths(results)
    for r in results:
        values = r["history"]["val_accuracy"]
        ax.plot(_epochs(values), values, marker="o", **_style(r, depths))
    ax.set(xlabel="epoch", ylabel="validation accuracy", title=f"Validation accuracy\n{what}")
    _finish(ax)
    _save(fig, path)


def grad_norms_per_layer(results: list[dict[str, Any]], path: Path, what: str) -> None:
    """Per depth and activation, each Dense kernel's mean gradient norm per epoch, log
    scale; layers shaded from the input side (dark) to the logits (light)."""
    depths = _depths(results)
    activations = list(dict.fromkeys(r["activation"] for r in results))
    fig, axes = plt.subplots(
        len(depths),
        len(activations),
        squeeze=False,
        sharey=True,
        figsize=(4.3 * len(activations), 3.4 * len(depths) + 0.6),
    )
    for r in results:
        ax = axes[depths.index(r["depth"]), activations.index(r["activation"])]
        layers = [key for key in r["history"] if key.startswith("grad_norm/")]
        shades = np.linspace(1.0, 0.35, len(layers))
        base = matplotlib.colors.to_rgb(COLOURS.get(r["activation"], "black"))
        for key, shade in zip(layers, shades, strict=True):
            values = r["history"][key]
            ax.plot(
                _epochs(values),
                values,
                marker=".",
                label=key.split("/", 1)[1],
                color=tuple(shade * c + (1 - shade) for c in base),
            )
        ax.set_yscale("log")
        ax.set(title=f"{r['activation']}, depth {r['depth']}", xlabel="epoch")
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))
        ax.grid(alpha=0.3, which="both")
        ax.legend(fontsize=6, ncol=2)
    for ax in axes[:, 0]:
        ax.set_ylabel("mean gradient norm (log)")
    fig.suptitle(f"Gradient norm of each Dense kernel per epoch (mean over its batches)\n{what}")
    _save(fig, path)


def _epochs(values: list[float]) -> list[int]:
    return list(range(1, len(values) + 1))


def _finish(ax) -> None:
    ax.xaxis.set_major_locator(MaxNLocator(integer=True))
    ax.grid(alpha=0.3, which="both")
    ax.legend(loc="center left", bbox_to_anchor=(1.02, 0.5), fontsize=8)


def _save(fig, path: Path) -> None:
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)
