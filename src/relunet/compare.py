"""The lab's experiment: one network, several activations and depths, nothing else changed.

Every run starts from the same seed (so the same initial weights wherever the shapes
agree) and sees the same batches in the same order, and logs each Dense kernel's
gradient norm per epoch. What differs between runs is the activation and the depth,
which is what makes the vanishing gradient of deep sigmoid stacks visible.
"""

from __future__ import annotations

import csv
import json
import time
from pathlib import Path
from typing import Any

from relunet import data, plots, preflight
from relunet.config import CompareConfig, ModelConfig, OptimConfig, take
from relunet.model import build_model, grad, kernel_grad_norms
from relunet.table import format_table
from relunet.train import how_it_ran, progress_verbosity, seed_everything, set_threads

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
]


def compare(config: CompareConfig) -> list[dict[str, Any]]:
    """Train every (depth, activation) pair; write results.csv/json and the plots to out.
    RelunetError for bad input (the checks of relunet.preflight.compare)."""
    return run(preflight.compare(config))


def run(config: CompareConfig) -> list[dict[str, Any]]:
    """`compare` for a config that has passed `relunet.preflight.compare`."""
    out = Path(config.out)
    set_threads(config.threads)
    splits = data.load_splits(config)  # decoded once, shared by every run
    train, val, test = splits.train, splits.val, splits.test

    results = []
    for depth in config.depths:
        for activation in config.activations:
            print(f"compare: {activation}, depth {depth}", flush=True)
            results.append(run_one(config, activation, depth, train, val, test))
    out.mkdir(parents=True, exist_ok=True)
    write_results(out, results)
    draw_plots(out, results, config)
    print(results_table(results))
    print(f"compare: results and plots written to {out}", flush=True)
    return results


def run_one(
    config: CompareConfig,
    activation: str,
    depth: int,
    train: data.Arrays,
    val: data.Arrays,
    test: data.Arrays,
) -> dict[str, Any]:
    """One run with gradient norms logged; its summary row plus the per-epoch history."""
    seed_everything(config.seed, config.deterministic)
    steps = data.steps_per_epoch(train, config.batch_size)
    model = build_model(
        take(ModelConfig, config, depth=depth, activation=activation),
        take(OptimConfig, config),
        decay_steps=config.epochs * steps,
        grad_norms=True,
    )
    counter = data.EpochCounter()
    batches = data.training_pipeline(
        train, config.batch_size, config.seed, counter, config.label_smoothing
    )
    at_init = grad_norms_at_first_step(model, batches)
    start = time.perf_counter()
    history = model.fit(
        batches,
        validation_data=data.evaluation_pipeline(val, config.batch_size),
        epochs=config.epochs,
        callbacks=[counter],
        shuffle=False,
        verbose=progress_verbosity(config.verbose),
    ).history
    seconds = time.perf_counter() - start
    tested = model.evaluate(
        data.evaluation_pipeline(test, config.batch_size), verbose=0, return_dict=True
    )
    return {
        "activation": activation,
        "depth": depth,
        "val_accuracy": history["val_accuracy"][-1],
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


def draw_plots(out: Path, results: list[dict[str, Any]], config: CompareConfig) -> None:
    """The lesson's figures, each titled with what was trained."""
    what = (
        f"{config.dataset} {config.train_split}, {config.epochs} epochs, width "
        f"{config.width}, {config.init} init, Adam {config.learning_rate:g}, seed {config.seed}"
    )
    plots.first_step_grad_norms(results, out / "first_step_grad_norms.png", what)
    plots.activation_derivatives(out / "activation_derivatives.png")
    plots.val_accuracy(results, out / "val_accuracy.png", what)
    plots.grad_norms_per_layer(results, out / "grad_norms.png", what)


def write_results(out: Path, results: list[dict[str, Any]]) -> None:
    with open(out / "results.csv", "w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=COLUMNS, extrasaction="ignore")
        writer.writeheader()
        writer.writerows(results)
    (out / "results.json").write_text(json.dumps(results, indent=2) + "\n")


def results_table(results: list[dict[str, Any]]) -> str:
    """The comparison as the text table `relunet compare` prints."""
    header = ["activation", "depth", "val_acc", "test_acc", "epochs", "seconds"]
    header += ["grad0 init", "grad0 first", "grad0 last"]
    rows = [
        [
            r["activation"],
            str(r["depth"]),
            f"{r['val_accuracy']:.4f}",
            f"{r['test_accuracy']:.4f}",
            str(r["epochs"]),
            f"{r['seconds']:.1f}",
            f"{r['grad_norm_first_layer_at_init']:.2e}",
            f"{r['grad_norm_first_layer_first_epoch']:.2e}",
            f"{r['grad_norm_first_layer_last_epoch']:.2e}",
        ]
        for r in results
    ]
    return format_table(header, rows)
