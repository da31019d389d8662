"""Search learning rate and width (and optionally depth and batch size) with keras-tuner.

`ReluNetHyperModel` builds the very model `relunet train` trains, so a trial runs the
lab's `train_step`. keras-tuner keeps every trial on disk: rerunning the same command
reloads them and carries on to `max_trials`. The best hyperparameters are then
retrained on the full train split, evaluated once on test and exported.

keras-tuner writes its records (oracle.json, tuner0.json, trial.json) in place; while
`tune` runs, they are written atomically instead, so a kill never leaves half a record.
"""

from __future__ import annotations

import contextlib
import math
import time
from pathlib import Path
from typing import Any

import keras
import keras_tuner

from relunet import _compat, data, trials
from relunet.checks import check_output_dir
from relunet.config import BATCH_SIZE_CHOICES, DEPTH_RANGE, WIDTH_STEP, TuneConfig
from relunet.export import export_saved_model
from relunet.model import build_model
from relunet.rundir import hold_lock, read_json, write_json_atomic, write_text_atomic
from relunet.train import progress_verbosity


class TuningFailed(RuntimeError):
    """Every trial of the search failed, so there is no best model to retrain."""


class ReluNetHyperModel(keras_tuner.HyperModel):
    """The project's ReluNet, with hyperparameters drawn from a TuneConfig's space."""

    def __init__(self, config: TuneConfig):
        super().__init__(name="relunet")
        self.config = config

    def build(self, hp: keras_tuner.HyperParameters) -> keras.Model:
        c = self.config
        learning_rate = hp.Float("learning_rate", c.lr_min, c.lr_max, sampling="log")
        width = hp.Int("width", c.width_min, c.width_max, step=WIDTH_STEP)
        depth = hp.Int("depth", *DEPTH_RANGE) if "depth" in c.search else c.depth
        # Every trial starts from the same seed, so trials differ only in hyperparameters.
        keras.utils.set_random_seed(c.seed)
        return build_model(
            width,
            depth,
            c.activation,
            c.init,
            learning_rate,
            c.jit_compile,
            steps_per_execution=c.steps_per_execution,
        )

    def batch_size(self, hp: keras_tuner.HyperParameters) -> int:
        if "batch_size" in self.config.search:
            return hp.Choice("batch_size", list(BATCH_SIZE_CHOICES))
        return self.config.batch_size

    def fit(self, hp, model, x: data.Arrays, validation_data: data.Arrays, **kwargs):
        """Batch the in-memory splits at this trial's batch size and fit.

        `kwargs` carries the tuner's own callbacks and epochs, so it is passed on whole.
        A loss that became NaN is reported as a NaN objective, which keras-tuner
        records as a failed trial before it goes on with the search.
        """
        batch_size = self.batch_size(hp)
        history = model.fit(
            data.training_pipeline(
                x, batch_size, self.config.seed, first_epoch=kwargs.get("initial_epoch", 0)
            ),
            validation_data=data.evaluation_pipeline(validation_data, batch_size),
            shuffle=False,
            **kwargs,
        )
        losses = history.history.get("loss", [])
        if any(not math.isfinite(loss) for loss in losses):
            return {trials.OBJECTIVE: math.nan}
        return history


class _RecordsTrials:
    """Mixed into each tuner: record how long each trial ran, for how many epochs, and
    why it failed if it did; and never rerun a trial that already ended."""

    def reload(self):
        super().reload()
        _compat.drop_ended_trials_from_retry_queue(self.oracle)

    def run_trial(self, trial, *args, **kwargs):
        start, results = time.perf_counter(), []
        try:
            results = super().run_trial(trial, *args, **kwargs)
            return results
        finally:
            epochs = [len(r.history.get("loss", [])) for r in results if hasattr(r, "history")]
            diverged = any(isinstance(r, dict) and math.isnan(r[trials.OBJECTIVE]) for r in results)
            write_json_atomic(
                Path(self.get_trial_dir(trial.trial_id)) / trials.TRIAL_TIMING,
                {
                    "seconds": round(time.perf_counter() - start, 2),
                    "epochs": max(epochs) if epochs else None,
                    "failure": "the loss became NaN" if diverged else None,
                    "tuner_id": self.tuner_id,  # which process ran it, in a distributed search
                },
            )


class RandomSearch(_RecordsTrials, keras_tuner.RandomSearch):
    pass


class Hyperband(_RecordsTrials, keras_tuner.Hyperband):
    pass


class BayesianOptimization(_RecordsTrials, keras_tuner.BayesianOptimization):
    pass


def make_tuner(config: TuneConfig) -> keras_tuner.Tuner:
    """The configured keras-tuner tuner; it reloads an existing project unless overwrite."""
    common = dict(
        hypermodel=ReluNetHyperModel(config),
        objective=keras_tuner.Objective(trials.OBJECTIVE, direction="max"),
        executions_per_trial=config.executions_per_trial,
        seed=config.seed,
        directory=config.directory,
        project_name=config.project_name,
        overwrite=config.overwrite,
        # A failed (NaN) trial is recorded and the search goes on to max_trials.
        max_consecutive_failed_trials=config.max_trials + 1,
    )
    if config.tuner == "hyperband":
        tuner = Hyperband(max_epochs=config.epochs, factor=3, **common)
        if isinstance(tuner.oracle, keras_tuner.Oracle):  # on the chief, or when alone
            tuner.oracle.max_trials = config.max_trials
        return tuner
    tuner_class = RandomSearch if config.tuner == "random" else BayesianOptimization
    return tuner_class(max_trials=config.max_trials, **common)


def tune(config: TuneConfig) -> dict[str, Any]:
    """Run (or resume) the search, print its table and retrain, test and export the best."""
    config = config.validate()
    check_output_dir(config.directory, "tuning directory")
    trials.check_search_space(config)
    project = trials.project_dir(config)
    project.mkdir(parents=True, exist_ok=True)
    # Beside the project, which keras-tuner deletes on --overwrite. Workers of a
    # distributed search share the project with their chief, which holds the lock.
    lock = project.with_name(f".{project.name}.lock")
    worker = _compat.is_keras_tuner_worker()
    with (
        contextlib.nullcontext() if worker else hold_lock(lock, f"tuning project {project}"),
        _compat.atomic_keras_tuner_records(write_text_atomic),
    ):
        return _tune(config)


def _tune(config: TuneConfig) -> dict[str, Any]:
    source = data.find_source(config.dataset, config.data_dir, config.tfds_dir)
    train, val = (
        data.load_arrays(d) for d in data.load_tfds(source, [config.train_split, config.val_split])
    )
    tuner = make_tuner(config)
    trials.project_dir(config).mkdir(parents=True, exist_ok=True)
    write_json_atomic(trials.project_dir(config) / trials.SEARCH_CONFIG, config.to_dict())

    callbacks = [
        keras.callbacks.EarlyStopping(
            monitor=trials.OBJECTIVE, mode="max", patience=config.patience
        ),
        keras.callbacks.TerminateOnNaN(),
    ]
    # The splits are decoded once, here; every trial batches the same arrays.
    tuner.search(
        train,
        validation_data=val,
        epochs=config.epochs,
        callbacks=callbacks,
        verbose=progress_verbosity(config.verbose),
    )
    if _compat.is_keras_tuner_worker():
        print("tune: this worker has no trials left; the chief reports the results")
        return {}

    rows = trials.summarize(trials.project_dir(config))
    best_row = next(
        (r for r in rows if r.status == "COMPLETED" and r.val_accuracy is not None), None
    )
    if best_row is None:
        raise TuningFailed(
            f"tune: no trial in {trials.project_dir(config)} completed; "
            "try a narrower --lr-min/--lr-max"
        )
    return finish(config, tuner, best_row, source)


def finish(
    config: TuneConfig, tuner: keras_tuner.Tuner, best_row: trials.TrialRow, source: data.Source
) -> dict[str, Any]:
    """Retrain the best hyperparameters on the full train split, test once, save, export."""
    final_path = trials.project_dir(config) / trials.FINAL
    if final_path.is_file():
        final = read_json(final_path, expect=dict)
        if final.get("trial_id") == best_row.trial_id:
            print(f"tune: the best trial was already retrained: {_result_line(final)}")
            return final
    hp = tuner.get_best_hyperparameters(1)[0]
    hypermodel: ReluNetHyperModel = tuner.hypermodel
    epochs = best_row.best_epoch or config.epochs
    batch_size = hypermodel.batch_size(hp)
    full, test_split = (
        data.load_arrays(d)
        for d in data.load_tfds(source, [config.full_train_split, config.test_split])
    )

    model = hypermodel.build(hp)
    start = time.perf_counter()
    model.fit(
        data.training_pipeline(full, batch_size, config.seed),
        epochs=epochs,
        shuffle=False,
        verbose=progress_verbosity(config.verbose),
    )
    seconds = time.perf_counter() - start
    test = model.evaluate(
        data.evaluation_pipeline(test_split, batch_size), verbose=0, return_dict=True
    )
    model_path = trials.project_dir(config) / "best_model.keras"
    model.save(model_path)
    final = {
        "trial_id": best_row.trial_id,
        "hyperparameters": {k: v for k, v in hp.values.items() if not k.startswith("tuner/")},
        "val_accuracy": best_row.val_accuracy,
        "retrained_on": config.full_train_split,
        "epochs": epochs,
        "retrain_seconds": round(seconds, 2),
        "test_split": config.test_split,
        "test_accuracy": test["accuracy"],
        "test_loss": test["loss"],
        "model": str(model_path),
        "export": None,
    }
    if config.export_dir:
        final["export"] = str(export_saved_model(model, config.export_dir))
    write_json_atomic(final_path, final)
    print(f"tune: {_result_line(final)}")
    return final


def _result_line(final: dict[str, Any]) -> str:
    hps = ", ".join(
        f"{k}={v:.3g}" if isinstance(v, float) else f"{k}={v}"
        for k, v in final["hyperparameters"].items()
    )
    where = f"; exported to {final['export']}" if final.get("export") else ""
    return (
        f"best trial {final['trial_id']} ({hps}): val_accuracy {final['val_accuracy']:.4f}; "
        f"retrained on {final['retrained_on']} for {final['epochs']} epoch(s): test accuracy "
        f"{final['test_accuracy']:.4f}; saved {final['model']}{where}"
    )
