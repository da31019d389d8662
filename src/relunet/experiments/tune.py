"""Search relunet's hyperparameters with keras-tuner, then retrain the winner for real.

`ReluNetHyperModel` draws a trial's values (learning rate and width by default; depth,
batch size, init, schedule, label smoothing, epochs, dropout and batch norm on request)
and builds the very model `relunet train` trains, so a trial runs the lab's
`train_step`, on the batches train would serve it (distorted and with non-digit shapes
as --augment and --non-digits say, the same for every trial). keras-tuner keeps every
trial on disk: rerunning the same command reloads them and carries on to `max_trials`.
Each trial's TensorBoard logs carry its hyperparameters for the HParams dashboard
(`tensorboard --logdir tuning/relunet/logs`).

Trials are ranked by `--objective`: their best `val_accuracy`, or their reading score
(relunet.experiments.reading_score), one name from keras-tuner's Objective to the table.

The winner is then retrained as a plain `relunet train` run on the full train split
(relunet.experiments.retrain), and the command that does it is printed, so anyone can
reproduce the result. The test split is seen once, by that run. Nothing is exported
unless `--export DIR`.

keras-tuner writes its records (oracle.json, tuner0.json, trial.json) in place; while
`tune` runs, they are written atomically instead, so a kill never leaves half a record.
"""

from __future__ import annotations

import contextlib
import dataclasses
import math
from typing import Any

import keras
import keras_tuner

from relunet import data, preflight
from relunet.base import _compat
from relunet.base.errors import TuningFailed
from relunet.base.files import hold_lock, write_json_atomic, write_text_atomic
from relunet.base.values import SEED_MAX
from relunet.config import (
    BATCH_SIZE_CHOICES,
    DEPTH_RANGE,
    DROPOUT_CHOICES,
    INITS,
    LABEL_SMOOTHING_CHOICES,
    LR_SCHEDULES,
    WIDTH_STEP,
    ModelConfig,
    OptimConfig,
    TuneConfig,
    take,
)
from relunet.experiments import reading_score, trial_resume, trials
from relunet.experiments.retrain import finish
from relunet.experiments.tuners import make_tuner
from relunet.training.model import build_model
from relunet.training.runtime import (
    how_it_ran,
    progress_verbosity,
    seed_everything,
    set_threads,
)


class ReluNetHyperModel(keras_tuner.HyperModel):
    """The project's ReluNet, with hyperparameters drawn from a TuneConfig's space."""

    def __init__(self, config: TuneConfig, train_examples: int):
        super().__init__(name="relunet")
        self.config, self.train_examples = config, train_examples
        # Which of a trial's --executions-per-trial fits comes next (the tuner resets it
        # for each trial): execution k draws its weights and data order from seed + k, so
        # the fits it averages differ, while every trial's first fit starts alike.
        self.execution = 0
        self.last_step: dict[str, Any] | None = None  # how the last fit's step ran
        self.last_fit: dict[str, Any] = {}  # where it resumed, its optimizer steps
        # The running trial's folder (the tuner sets it): its fits are backed up there.
        self.trial_dir: str | None = None
        self.reading: reading_score.ReadingSet | None = None  # made at the first fit

    def seed(self) -> int:
        """The seed of the trial's current execution."""
        return (self.config.seed + self.execution) % (SEED_MAX + 1)

    def values(self, hp: keras_tuner.HyperParameters) -> dict[str, Any]:
        """This trial's training values: searched ones from `hp`, the others fixed."""
        c, searched = self.config, set(self.config.search)
        space = {
            "learning_rate": lambda: hp.Float("learning_rate", c.lr_min, c.lr_max, sampling="log"),
            "width": lambda: hp.Int("width", c.width_min, c.width_max, step=WIDTH_STEP),
            "depth": lambda: hp.Int("depth", *DEPTH_RANGE),
            "batch_size": lambda: hp.Choice("batch_size", list(BATCH_SIZE_CHOICES)),
            "init": lambda: hp.Choice("init", list(INITS)),
            "lr_schedule": lambda: hp.Choice("lr_schedule", list(LR_SCHEDULES)),
            "label_smoothing": lambda: hp.Choice("label_smoothing", list(LABEL_SMOOTHING_CHOICES)),
            "epochs": lambda: hp.Int("epochs", c.epochs_min, c.epochs),
            "dropout": lambda: hp.Choice("dropout", list(DROPOUT_CHOICES)),
            "batch_norm": lambda: hp.Boolean("batch_norm"),
        }
        values = {
            name: draw() if name in searched else getattr(c, name) for name, draw in space.items()
        }
        values["epochs"] = hp.values.get("tuner/epochs", values["epochs"])  # Hyperband's say
        return values

    def build(self, hp: keras_tuner.HyperParameters) -> keras.Model:
        trial = dataclasses.replace(self.config, **self.values(hp))
        # Every trial starts from the same seed, so trials differ only in hyperparameters.
        keras.utils.set_random_seed(self.seed())
        steps = math.ceil(self.train_examples / trial.batch_size)
        return build_model(
            take(ModelConfig, trial), take(OptimConfig, trial), decay_steps=trial.epochs * steps
        )

    def pipeline(self, values: dict[str, Any]) -> data.PipelineConfig:
        """How a trial's batches are served: its batch size and label smoothing, its
        execution's seed, and the search's augmentation and non-digit shapes (every trial
        and the retrain alike, as --augment and --non-digits say)."""
        return data.PipelineConfig.of(
            self.config,
            batch_size=values["batch_size"],
            seed=self.seed(),
            label_smoothing=values["label_smoothing"],
        )

    def fit(self, hp, model, x: data.Arrays, validation_data: data.Arrays, **kwargs):
        """Batch the in-memory splits as this trial says and fit.

        `kwargs` carries the tuner's own callbacks and epochs, so it is passed on whole.
        A loss that became NaN is reported as a NaN objective, which keras-tuner
        records as a failed trial before it goes on with the search.
        """
        v = self.values(hp)
        if "epochs" in self.config.search:
            kwargs["epochs"] = v["epochs"]
        pipeline = self.pipeline(v)
        validation = data.evaluation_pipeline(validation_data, batch_size=v["batch_size"])
        if self.config.objective == "reading":  # scored first, so the others see it
            if self.reading is None:
                self.reading = reading_score.reading_set(validation_data, self.config.seed)
            kwargs["callbacks"] = [
                reading_score.ReadingScore(self.reading),
                *kwargs.get("callbacks", []),
            ]
        # Hyperband passes it: above 0 for a trial that continues an earlier one's model.
        initial_epoch = kwargs.pop("initial_epoch", 0)
        if self.trial_dir is not None and not initial_epoch:
            epochs, callbacks = kwargs.pop("epochs"), kwargs.pop("callbacks", [])
            history, self.last_fit = trial_resume.fit_resumably(
                model,
                trial_resume.execution_dir(self.trial_dir, self.execution),
                x,
                validation,
                pipeline,
                epochs=epochs,
                backup_every=self.config.backup_every,
                fingerprint=trial_resume.fingerprint(
                    v, self.config.train_split, epochs, pipeline.augment
                ),
                callbacks=callbacks,
                **kwargs,
            )
        else:  # a Hyperband trial that continues another's model (see trial_resume)
            counter = data.EpochCounter(initial_epoch)
            kwargs["callbacks"] = [counter, *kwargs.get("callbacks", [])]
            history = model.fit(
                data.training_pipeline(x, pipeline, counter=counter),
                validation_data=validation,
                initial_epoch=initial_epoch,
                shuffle=False,
                **kwargs,
            )
            self.last_fit = {"resumed_from": None, "optimizer_steps": None}
        self.execution += 1
        self.last_step = how_it_ran(model)  # recorded with the trial
        if any(not math.isfinite(loss) for loss in history.history.get("loss", [])):
            return {self.config.objective: math.nan}
        return history


def tune(config: TuneConfig) -> dict[str, Any]:
    """Run (or resume) the search, print its table and retrain and test the best; with
    `summary`, print the table of the search so far. RelunetError for bad input (the
    checks of relunet.preflight.tune)."""
    return run(preflight.tune(config))


def run(config: TuneConfig) -> dict[str, Any]:
    """`tune` for a config that has passed `relunet.preflight.tune`."""
    if config.summary:
        return {
            "trials": [
                dataclasses.asdict(r)
                for r in trials.summarize(trials.project_dir(config), from_outside=True)
            ]
        }
    set_threads(config.threads)
    seed_everything(config.seed, config.deterministic)
    project = trials.project_dir(config)
    project.mkdir(parents=True, exist_ok=True)
    # Beside the project, which keras-tuner deletes on --overwrite. Workers of a
    # distributed search share the project with their chief, which holds the lock.
    lock = trials.lock_path(project)
    worker = _compat.is_keras_tuner_worker()
    with (
        contextlib.nullcontext() if worker else hold_lock(lock, f"tuning project {project}"),
        _compat.atomic_keras_tuner_records(write_text_atomic),
        _compat.keras_tuner_knows_it_is_not_in_a_notebook(),
    ):
        return _search(config)


def _search(config: TuneConfig) -> dict[str, Any]:
    project = trials.project_dir(config)
    source = data.find_source(config.dataset, config.data_dir, config.tfds_dir)
    train_split, val = (
        data.split_arrays(source, s) for s in (config.train_split, config.val_split)
    )
    tuner = make_tuner(config, ReluNetHyperModel(config, len(train_split)))
    if not _compat.is_keras_tuner_worker():
        # keras-tuner reloads a project only if tuner0.json exists, and writes it first
        # after oracle.json has recorded a trial as ended: a kill between the two left the
        # rerun starting a new search over the first trial. Written now, it reloads.
        tuner.save()
    project.mkdir(parents=True, exist_ok=True)
    write_json_atomic(project / trials.SEARCH_CONFIG, config.to_dict())
    callbacks = [
        keras.callbacks.EarlyStopping(
            monitor=config.objective, mode="max", patience=config.patience
        ),
        keras.callbacks.TerminateOnNaN(),
        # keras-tuner gives each trial its own log dir and adds its HParams there.
        keras.callbacks.TensorBoard(log_dir=str(project / "logs")),
    ]
    # The splits are decoded once, here; every trial batches the same arrays.
    tuner.search(
        train_split,
        validation_data=val,
        epochs=config.epochs,
        callbacks=callbacks,
        verbose=progress_verbosity(config.verbose),
    )
    if _compat.is_keras_tuner_worker():
        print("tune: this worker has no trials left; the chief reports the results")
        return {}
    rows = trials.summarize(project)
    best = next((r for r in rows if r.status == "COMPLETED" and r.score is not None), None)
    if best is None:
        raise TuningFailed(
            f"tune: no trial in {project} completed; try a narrower --lr-min/--lr-max"
        )
    hp = tuner.get_best_hyperparameters(1)[0]
    return finish(config, tuner.hypermodel.values(hp), hp.values, best)
