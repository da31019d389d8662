"""The search's winner retrained for real: its values as a plain `relunet train` run on
the full train split, tested once, exported where asked, with the command that
reproduces it printed and recorded (`relunet_final.json`)."""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Any

from relunet.base.errors import RelunetError
from relunet.base.files import read_json, write_json_atomic
from relunet.config import NO_SPLIT, TrainConfig, TuneConfig, flags_of
from relunet.experiments import trials
from relunet.inference.export import export_saved_model
from relunet.training.model import load_model
from relunet.training.rundir import RunDir
from relunet.training.train import train


def retrain_config(
    config: TuneConfig, values: dict[str, Any], best: trials.TrialRow, run_dir: str | None
) -> TrainConfig:
    """The `relunet train` run that retrains a trial's values on the full train split:
    for the epoch that scored best, or all its epochs under a cosine schedule (which
    anneals over all of them)."""
    epochs = (
        values["epochs"]
        if values["lr_schedule"] == "cosine"
        else (best.best_epoch or values["epochs"])
    )
    shared = {
        f.name: getattr(config, f.name)
        for f in dataclasses.fields(TrainConfig)
        if hasattr(config, f.name) and f.name not in ("jit_compile", "verbose")
    }
    return TrainConfig(
        **{
            **shared,
            **values,
            "epochs": epochs,
            "train_split": config.full_train_split,
            "val_split": NO_SPLIT,
            "run_dir": run_dir,
            "verbose": config.verbose,
        }
    )


def train_command(train_config: TrainConfig) -> str:
    """The `relunet train` command line of a config: the flags that differ from the
    defaults (the data's location aside)."""
    defaults, flags = TrainConfig(), []
    for field in dataclasses.fields(TrainConfig):
        value = getattr(train_config, field.name)
        if value == getattr(defaults, field.name) or field.name in (
            "data_dir",
            "tfds_dir",
            "verbose",
        ):
            continue
        flag = flags_of(field)[0]
        shown = repr(value) if isinstance(value, float) else str(value)  # exact: it reproduces
        flags.append(flag if value is True else f"{flag} {_quoted(shown)}")
    return " ".join(["relunet train", *flags])


def finish(
    config: TuneConfig,
    values: dict[str, Any],
    hyperparameters: dict[str, Any],
    best: trials.TrialRow,
) -> dict[str, Any]:
    """Retrain the best trial's training values (`values`: its searched hyperparameters,
    as keras-tuner recorded them, and the fixed ones) as a `relunet train` run, test it
    once, export it where asked, and say how to reproduce it."""
    project = trials.project_dir(config)
    final_path = project / trials.FINAL
    if final_path.is_file():
        final = read_json(final_path, expect=dict)
        if final.get("trial_id") == best.trial_id:
            _same_splits(final, config)
            print(f"tune: the best trial was already retrained: {_result_line(final)}")
            return _exported(final, config, final_path)
    retrain = retrain_config(config, values, best, None)
    retrain = dataclasses.replace(retrain, run_dir=str(retrain_dir(project, best, retrain)))
    command = train_command(dataclasses.replace(retrain, run_dir=None))
    print(
        f"tune: retraining trial {best.number} on {config.full_train_split}: {command}", flush=True
    )
    metrics = train(retrain)
    final = {
        "trial_id": best.trial_id,
        "trial": best.number,
        "hyperparameters": {k: v for k, v in hyperparameters.items() if not k.startswith("tuner/")},
        "objective": best.objective,  # what picked it, and its value
        best.objective: best.score,
        "val_accuracy": best.val_accuracy,
        "retrained_on": config.full_train_split,
        "epochs": retrain.epochs,
        "test_split": config.test_split,
        "test_accuracy": metrics["test_accuracy"],
        "test_loss": metrics["test_loss"],
        "model": metrics["best_model"],
        "command": command,
        "export": None,
    }
    if config.export_dir:
        final["export"] = str(export_saved_model(load_model(final["model"]), config.export_dir))
    write_json_atomic(final_path, final)
    print(f"tune: {_result_line(final)}")
    return final


def _same_splits(final: dict[str, Any], config: TuneConfig) -> None:
    """RelunetError where a rerun asks for the winner retrained or tested on other splits
    than it was: that is another run, not this one read back."""
    for flag, done, asked in (
        ("--full-train-split", final.get("retrained_on"), config.full_train_split),
        ("--test-split", final.get("test_split"), config.test_split),
    ):
        if done != asked:
            raise RelunetError(
                f"The best trial was already retrained on {final.get('retrained_on')} and "
                f"tested on {final.get('test_split')}, not {flag} {asked}: run its command "
                f"with that split ({final.get('command')}), or search again with --overwrite."
            )


def _exported(final: dict[str, Any], config: TuneConfig, final_path: Path) -> dict[str, Any]:
    """The retrained winner exported into --export where a rerun asks for a folder it was
    not exported to, or whose export has gone (a version more; an export still there is
    left as it is)."""
    if not config.export_dir:
        return final
    done = final.get("export")
    here = done and Path(done).parent.resolve() == Path(config.export_dir).resolve()
    if here and (Path(done) / "saved_model.pb").is_file():
        return final
    final = {
        **final,
        "export": str(export_saved_model(load_model(final["model"]), config.export_dir)),
    }
    write_json_atomic(final_path, final)
    print(f"tune: the retrained best trial exported to {final['export']}")
    return final


def retrain_dir(project: Path, best: trials.TrialRow, retrain: TrainConfig) -> Path:
    """Where the best trial is retrained: best_trial_N, N the trial's number as the table
    and the messages give it. Earlier versions of relunet named the folder by keras-tuner's
    trial id (N - 1); a search retrained then has such a folder of this very run, and
    it is continued (or read back) there."""
    numbered = project / f"best_trial_{best.number}"
    by_id = project / f"best_trial_{best.trial_id}"
    if by_id != numbered and not numbered.exists() and RunDir(by_id).started_with(retrain):
        return by_id
    return numbered


def _quoted(text: str) -> str:
    return f"'{text}'" if any(c in text for c in "[]%*? ") else text


def _result_line(final: dict[str, Any]) -> str:
    hps = ", ".join(
        f"{k}={v:.3g}" if isinstance(v, float) else f"{k}={v}"
        for k, v in final["hyperparameters"].items()
    )
    where = f"; exported to {final['export']}" if final.get("export") else ""
    objective = final.get("objective", "val_accuracy")
    score = f"{objective} {final[objective]:.4f}"
    if objective != "val_accuracy":
        score += f" (val_accuracy {final['val_accuracy']:.4f})"
    return (
        f"best trial {final.get('trial', final['trial_id'])} ({hps}): {score}; "
        f"retrained on {final['retrained_on']} for "
        f"{final['epochs']} epoch(s): test accuracy {final['test_accuracy']:.4f}; model "
        f"{final['model']}{where}. Reproduce it with: {final.get('command', '?')}"
    )
