"""The lab's experiment: networks side by side, nothing else changed, over several seeds.

Every run of a seed starts from that seed (so the same initial weights wherever the
shapes agree) and sees the same batches in the same order, and logs each Dense
kernel's gradient norm at the first step and per epoch. What differs between the
cells is their layer settings: a grid of activations, inits, depths, widths, dropouts
and batch norms (the vanishing gradient of deep sigmoid stacks is its first lesson),
or a named series (relunet.config.series), such as the lab-10 notebooks, set beside the
figures they printed. Each cell is run once per seed and read as mean and spread.
"""

from __future__ import annotations

import csv
import itertools
import json
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from relunet import data, preflight
from relunet.base.table import format_table
from relunet.config import CompareConfig, ModelConfig, OptimConfig, field_defaults, series, take
from relunet.experiments import plots, seeds
from relunet.training.model import build_model, grad, kernel_grad_norms
from relunet.training.runtime import how_it_ran, progress_verbosity, seed_everything, set_threads

FIRST_LAYER = "grad_norm/dense_0"
COLUMNS = [
    "activation",
    "depth",
    "val_accuracy",
    "test_accuracy",
    "epochs",
    "seconds",
    "grad_norm_first_layer_at_init",
    "grad_norm_first_layer_first_epoch",
    "grad_norm_first_layer_last_epoch",
    "width",
    "init",
    "dropout",
    "batch_norm",
    "seed",
    "network",
]
LAYERS = ("activation", "depth", "width", "init", "dropout", "batch_norm")


@dataclass
class Comparison:
    """What `compare` measured: every run, each cell over its seeds, and the series'
    lessons (each with its sentence)."""

    runs: list[dict[str, Any]]  # one per cell and seed: results.csv and results.json
    cells: list[dict[str, Any]]  # one per network, means and spreads: summary.json
    lessons: list[dict[str, Any]]


def compare(config: CompareConfig) -> Comparison:
    """Train every cell with every seed; write results.csv/json, summary.json and the
    plots to out. RelunetError for bad input (the checks of relunet.preflight.compare)."""
    return run(preflight.compare(config))


def run(config: CompareConfig) -> Comparison:
    """`compare` for a config that has passed `relunet.preflight.compare`."""
    out = Path(config.out)
    set_threads(config.threads)
    splits = data.load_splits(config)  # decoded once, shared by every run
    each_seed = list(range(config.seed, config.seed + config.seeds))
    runs, cells = [], []
    for cell in planned_cells(config):
        cell_runs = []
        for seed in each_seed:
            also = f", seed {seed}" if len(each_seed) > 1 else ""
            print(f"compare: {cell['label']}{also}", flush=True)
            cell_runs.append({**cell, **run_one(config, cell, seed, splits)})
        runs += cell_runs
        cells.append(seeds.over_seeds(cell, cell_runs))
    lessons = seeds.lessons(config.series, cells) if config.series else []
    out.mkdir(parents=True, exist_ok=True)
    write_results(out, runs, cells, lessons, config)
    draw_plots(out, cells, config)
    print(results_table(cells, config))
    for lesson in lessons:
        print(lesson["sentence"])
    if config.series:
        print(f"notebook: the test accuracy each notebook printed, one run: {source(config)}")
    print(f"compare: results and plots written to {out}", flush=True)
    return Comparison(runs, cells, lessons)


def planned_cells(config: CompareConfig) -> list[dict[str, Any]]:
    """The networks to train, each as its layer settings and a label: the series', or
    every combination of the grid's values (depth outermost, activation innermost)."""
    if config.series:
        return [
            {
                **network.layers(),
                "network": network.lab,
                "description": network.describe(),
                "label": f"{network.lab} {network.describe()}",
                "printed": network.printed,
            }
            for network in series.SERIES[config.series].networks
        ]
    axes = (
        config.depths,
        config.widths,
        config.inits,
        config.dropouts,
        [b == "on" for b in config.batch_norms],
        config.activations,
    )
    cells = []
    for depth, width, init, dropout, batch_norm, activation in itertools.product(*axes):
        layers = dict(
            zip(LAYERS, (activation, depth, width, init, dropout, batch_norm), strict=True)
        )
        label = [activation, f"depth {depth}"]  # and the other settings where they vary
        label += [f"width {width}"] * (len(config.widths) > 1)
        label += [series.INIT_NAMES[init]] * (len(config.inits) > 1)
        label += [f"dropout {dropout:g}"] * (len(config.dropouts) > 1)
        label += [f"batch norm {'on' if batch_norm else 'off'}"] * (len(config.batch_norms) > 1)
        cells.append({**layers, "network": None, "label": ", ".join(label)})
    return cells


def run_one(
    config: CompareConfig, layers: dict[str, Any], seed: int, splits: data.Splits
) -> dict[str, Any]:
    """One run with gradient norms logged; its results plus the per-epoch history."""
    seed_everything(seed, config.deterministic)
    steps = data.steps_per_epoch(splits.train, config.batch_size)
    model = build_model(
        ModelConfig(**{name: layers[name] for name in LAYERS}),
        take(OptimConfig, config),
        decay_steps=config.epochs * steps,
        grad_norms=True,
    )
    counter = data.EpochCounter()
    batches = data.training_pipeline(
        splits.train, data.PipelineConfig.of(config, seed=seed), counter=counter
    )
    at_init = grad_norms_at_first_step(model, batches)
    start = time.perf_counter()
    history = model.fit(
        batches,
        validation_data=(
            None
            if splits.val is None
            else data.evaluation_pipeline(splits.val, batch_size=config.batch_size)
        ),
        epochs=config.epochs,
        callbacks=[counter],
        shuffle=False,
        verbose=progress_verbosity(config.verbose),
    ).history
    seconds = time.perf_counter() - start
    tested = model.evaluate(
        data.evaluation_pipeline(splits.test, batch_size=config.batch_size),
        verbose=0,
        return_dict=True,
    )
    return {
        "seed": seed,
        "val_accuracy": history["val_accuracy"][-1] if "val_accuracy" in history else None,
        "test_accuracy": tested["accuracy"],
        "epochs": len(history["loss"]),
        "seconds": round(seconds, 2),
        "step": how_it_ran(model),
        "grad_norm_first_layer_at_init": at_init[0],
        "grad_norms_at_init": at_init,  # each Dense kernel's, input side first
        "grad_norm_first_layer_first_epoch": history[FIRST_LAYER][0],
        "grad_norm_first_layer_last_epoch": history[FIRST_LAYER][-1],
        "history": {key: [float(v) for v in values] for key, values in history.items()},
    }


def grad_norms_at_first_step(model, batches) -> list[float]:
    """Each Dense kernel's gradient norm on the first batch, before any update (input
    side first): the initialisation's own gradient flow, which an epoch's mean blurs
    once Adam adapts. The pipeline's EpochCounter, in fit's callbacks, still gives fit's
    first pass to epoch 0."""
    images, labels = next(iter(batches))
    return [float(n) for n in kernel_grad_norms(model, grad(model, images, labels)).values()]


def source(config: CompareConfig) -> str:
    return series.SERIES[config.series].source


def what_was_trained(config: CompareConfig) -> str:
    """A figure's subtitle: the data, the training, and the settings all cells share."""
    shared = []
    if not config.series:
        if len(config.widths) == 1:
            shared.append(f"width {config.widths[0]}")
        if len(config.inits) == 1:
            shared.append(f"{config.inits[0]} init")
        if len(config.dropouts) == 1 and config.dropouts[0]:
            shared.append(f"dropout {config.dropouts[0]:g}")
        if config.batch_norms == ("on",):
            shared.append("batch norm")
    epochs = f"{config.epochs} epoch" + "s" * (config.epochs > 1)
    what = ", ".join([f"{config.dataset} {config.train_split}", epochs, *shared])
    what += f", Adam {config.learning_rate:g}"
    if config.seeds == 1:
        return f"{what}, seed {config.seed}"
    return f"{what}, seeds {config.seed}-{config.seed + config.seeds - 1}"


def draw_plots(out: Path, cells: list[dict[str, Any]], config: CompareConfig) -> None:
    """The lesson's figures, each titled with what was trained. A series (one epoch,
    no validation) gets the first step's gradients and the test accuracies."""
    what = what_was_trained(config)
    plots.first_step_grad_norms(cells, out / "first_step_grad_norms.png", what)
    plots.test_accuracy(cells, out / "test_accuracy.png", what, config.series and source(config))
    if config.series:
        return
    plots.activation_derivatives(out / "activation_derivatives.png")
    plots.val_accuracy(cells, out / "val_accuracy.png", what)
    plots.grad_norms_per_layer(cells, out / "grad_norms.png", what)


def write_results(
    out: Path,
    runs: list[dict[str, Any]],
    cells: list[dict[str, Any]],
    lessons: list[dict[str, Any]],
    config: CompareConfig,
) -> None:
    with open(out / "results.csv", "w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=COLUMNS, extrasaction="ignore")
        writer.writeheader()
        writer.writerows(runs)
    (out / "results.json").write_text(json.dumps(runs, indent=2) + "\n")
    summary = {
        "what": what_was_trained(config),
        "series": config.series,
        "source": source(config) if config.series else None,
        "cells": [{k: v for k, v in cell.items() if k != "history"} for cell in cells],
        "lessons": lessons,
    }
    (out / "summary.json").write_text(json.dumps(summary, indent=2) + "\n")


def results_table(cells: list[dict[str, Any]], config: CompareConfig) -> str:
    """The comparison as the text table `relunet compare` prints: with one seed, each
    run's figures; with more, each cell's means and the spread of its test accuracy."""
    n = config.seeds
    spread = [seeds.spread_header(n)] if n > 1 else []
    if config.series:
        header = ["lab", "network", "test_acc", *spread, "notebook", "seconds"]
        header += ["grad0 init", "grad0/logits"]
    else:
        varying = [name for name in LAYERS[2:] if _shown(config, name)]
        header = ["activation", "depth", *varying, "val_acc", "test_acc", *spread]
        header += ["epochs", "seconds", "grad0 init", "grad0 first", "grad0 last"]
    rows = []
    for c in cells:
        test = [f"{c['test_accuracy']:.4f}"] + ([seeds.spread_text(c)] if n > 1 else [])
        if config.series:
            row = [
                c["network"],
                c["description"],
                *test,
                f"{c['printed']:.4f}",
                f"{c['seconds']:.1f}",
            ]
            ratio = c["grad_norms_at_init"][0] / c["grad_norms_at_init"][-1]
            row += [f"{c['grad_norm_first_layer_at_init']:.2e}", f"{ratio:.2e}"]
        else:
            row = [c["activation"], str(c["depth"])]
            row += [_setting(c[name]) for name in LAYERS[2:] if _shown(config, name)]
            row += [f"{c['val_accuracy']:.4f}", *test, str(c["epochs"]), f"{c['seconds']:.1f}"]
            row += [
                f"{c[key]:.2e}"
                for key in (
                    "grad_norm_first_layer_at_init",
                    "grad_norm_first_layer_first_epoch",
                    "grad_norm_first_layer_last_epoch",
                )
            ]
        rows.append(row)
    return format_table(header, rows)


def _shown(config: CompareConfig, name: str) -> bool:
    """A grid's layer setting gets a column when it varies or is not compare's default."""
    values = getattr(config, f"{name}s")
    return len(values) > 1 or values != field_defaults(CompareConfig)[f"{name}s"]


def _setting(value: Any) -> str:
    if isinstance(value, bool):
        return "on" if value else "off"
    return f"{value:g}" if isinstance(value, float) else str(value)
