"""A search's trial trained through `relunet train`'s backups, so a killed trial continues.

Each fit of a trial (one per `--executions-per-trial`) keeps, in its trial's folder:

    trial_<id>/execution<k>/backup/       AtomicBackupAndRestore's backups (every
                                          --backup-every steps and at each epoch end)
    trial_<id>/execution<k>/epochs.json   one row of logs per finished epoch

A rerun after a kill restores the newest usable backup and trains the rest of the
interrupted epoch, then the epochs left, exactly as `relunet train` resumes
(relunet.training.train.fit_epochs): bitwise equal to an uninterrupted trial under
`--deterministic`. The epochs' rows stand in for what the killed process knew: the
trial's history (its objective), EarlyStopping's count of epochs without progress and
keras-tuner's best value so far are replayed from them. An epoch's row is written
before its epoch-end backup, so a backup never names an epoch whose row is missing.
The backups are removed once keras-tuner has recorded the trial as ended.

Hyperband's trials that continue an earlier trial's model (`initial_epoch` above 0)
start from that model with a new optimizer, so their positions cannot be counted by
the optimizer's steps: they are not backed up, and a kill runs them again.
"""

from __future__ import annotations

import copy
import dataclasses
import hashlib
import json
import math
import shutil
from pathlib import Path
from typing import Any

import keras
import numpy as np

from relunet import data
from relunet.base.errors import RelunetError
from relunet.base.files import read_json, write_json_atomic
from relunet.config import AugmentConfig
from relunet.training.backup import (
    AtomicBackupAndRestore,
    BackupState,
    RestoreEpochMetrics,
    optimizer_steps,
)

EPOCHS = "epochs.json"


def execution_dir(trial_dir: str | Path, execution: int) -> Path:
    return Path(trial_dir) / f"execution{execution}"


def remove_backups(trial_dir: str | Path) -> None:
    """Drop a finished trial's backups (its epochs' rows stay, a few hundred bytes)."""
    for backup in Path(trial_dir).glob("execution*/backup"):
        shutil.rmtree(backup, ignore_errors=True)


def fingerprint(
    values: dict[str, Any], train_split: str, epochs: int, augment: AugmentConfig | None = None
) -> str:
    """What a trial's backups must have been written under to be resumed: its values and
    the augmentation's fields away from their defaults (none: the fingerprints of the
    trials backed up before tune had --augment)."""
    distorted = {
        f.name: getattr(augment, f.name)
        for f in dataclasses.fields(AugmentConfig)
        if augment is not None and getattr(augment, f.name) != f.default
    }
    extra = {"augment": distorted} if distorted else {}
    text = json.dumps(
        {**values, "train_split": train_split, "epochs": epochs, **extra}, sort_keys=True
    )
    return hashlib.sha256(text.encode()).hexdigest()[:16]


def weights_digest(model: keras.Model) -> str:
    """sha256 of the model's weights, in order: equal digests are bitwise equal weights."""
    digest = hashlib.sha256()
    for variable in model.weights:
        digest.update(np.ascontiguousarray(keras.ops.convert_to_numpy(variable)).tobytes())
    return digest.hexdigest()


class TrialBackup(AtomicBackupAndRestore):
    """The backups of `relunet train`, except after a loss that is not finite: the trial
    has failed (TerminateOnNaN ended its epoch early) and there is nothing to resume."""

    def on_epoch_end(self, epoch, logs=None):
        if all(math.isfinite(float(v)) for k, v in (logs or {}).items() if k == "loss"):
            super().on_epoch_end(epoch, logs)


class EpochRows(keras.callbacks.Callback):
    """Write each finished epoch's logs to `epochs.json` (atomically); listed before the
    backup, so that an epoch-end backup always has its row."""

    def __init__(self, path: Path, rows: list[dict[str, float]]):
        super().__init__()
        self.path, self.rows = path, rows

    def on_epoch_end(self, epoch, logs=None):
        del self.rows[epoch:]
        self.rows.append({k: float(v) for k, v in (logs or {}).items()})
        write_json_atomic(self.path, self.rows)


class ReplayEpochs(keras.callbacks.Callback):
    """As `fit` begins, give the callbacks that judge epochs what the earlier epochs
    (the rows) told them: EarlyStopping replays them; keras-tuner's best-epoch
    checkpoint (any callback with an `objective` and a `best_value`) learns the best."""

    def __init__(self, rows: list[dict[str, float]], callbacks: list[keras.callbacks.Callback]):
        super().__init__()
        self.rows, self.callbacks = rows, callbacks

    def on_train_begin(self, logs=None):
        for callback in self.callbacks:
            if isinstance(callback, keras.callbacks.EarlyStopping):
                for epoch, row in enumerate(self.rows):
                    callback.on_epoch_end(epoch, dict(row))
            elif hasattr(callback, "objective") and hasattr(callback, "best_value"):
                for row in self.rows:
                    if callback.objective.has_value(row):
                        value = callback.objective.get_value(row)
                        if callback.objective.better_than(value, callback.best_value):
                            callback.best_value = value


def _once_per_fit_sequence(callback: keras.callbacks.Callback) -> bool:
    """TensorBoard's HParams callback (keras-tuner adds one per trial) writes the trial's
    hyperparameters as the first fit begins, and refuses a second fit."""
    return type(callback).__module__.startswith("tensorboard.plugins.hparams")


def stopped_early(callbacks: list, rows: list[dict[str, float]], model: keras.Model) -> bool:
    """Whether an EarlyStopping among `callbacks` had ended the trial after `rows`."""
    for callback in callbacks:
        if isinstance(callback, keras.callbacks.EarlyStopping) and rows:
            probe = copy.deepcopy(callback)
            probe.set_model(model)
            probe.on_train_begin()
            for epoch, row in enumerate(rows):
                probe.on_epoch_end(epoch, dict(row))
            stopped, model.stop_training = model.stop_training, False
            if stopped:
                return True
    return False


def fit_resumably(
    model: keras.Model,
    folder: Path,
    x: data.Arrays,
    validation: Any,
    pipeline: data.PipelineConfig,
    *,
    epochs: int,
    backup_every: int,
    fingerprint: str,
    callbacks: list,
    **fit_kwargs,
) -> tuple[keras.callbacks.History, dict[str, Any]]:
    """Fit `model` for `epochs`, continuing from the backup in `folder` if there is one.

    Returns the whole trial's history (the rows of the epochs trained before a kill
    too) and what happened: where it resumed, the optimizer's steps, the weights'
    digest."""
    backup = TrialBackup(
        folder / "backup",
        save_freq=backup_every,
        delete_checkpoint=False,
        fingerprint=fingerprint,
        steps_per_epoch=data.steps_per_epoch(x, pipeline.batch_size),
        epochs=epochs,
    )
    state = _restore_position(backup, model, folder)
    rows = _rows_before(folder, state, epochs)
    folder.mkdir(parents=True, exist_ok=True)
    if state.epoch < epochs and not stopped_early(callbacks, rows, model):
        own = [EpochRows(folder / EPOCHS, rows), ReplayEpochs(rows, callbacks)]
        for batches, first, last, extra in list(_parts(x, pipeline, state, epochs)):
            if first > state.epoch:  # the rest of an interrupted epoch was fitted
                if stopped_early(callbacks, rows, model):
                    break  # that epoch was the one EarlyStopping stopped at
                callbacks = [c for c in callbacks if not _once_per_fit_sequence(c)]
            history = model.fit(
                batches,
                initial_epoch=first,
                epochs=last,
                validation_data=validation,
                shuffle=False,
                callbacks=[*extra, *callbacks, *own, backup],
                **fit_kwargs,
            )
            if any(not math.isfinite(v) for v in history.history.get("loss", [])):
                break
    resumed = {"epoch": state.epoch, "step": state.step} if state.epoch or state.step else None
    return _history(model, rows), {
        "resumed_from": resumed,
        "optimizer_steps": optimizer_steps(model),
        "weights_sha256": weights_digest(model),
    }


def _restore_position(backup: TrialBackup, model: keras.Model, folder: Path) -> BackupState:
    """Where the trial's backup says it stopped; the start when it has none or it is unusable."""
    try:
        return backup.restore(model) or BackupState(0, 0)
    except RelunetError as error:  # a trial can always start over: it loses only time
        print(f"tune: {error} Starting the trial over.", flush=True)
        shutil.rmtree(folder, ignore_errors=True)
        return BackupState(0, 0)


def _rows_before(folder: Path, state: BackupState, epochs: int) -> list[dict[str, float]]:
    """The rows of the epochs a backup says were finished before the kill."""
    if not (state.epoch or state.step):
        return []
    saved = read_json(folder / EPOCHS, expect=list) if (folder / EPOCHS).is_file() else []
    if len(saved) < state.epoch:  # cannot happen: each row is written before its backup
        raise RelunetError(f"{folder / EPOCHS} lacks the rows of its backup's epochs.")
    where = f"at epoch {state.epoch + 1} of {epochs}, step {state.step}"
    if state.epoch >= epochs:  # killed after its last epoch, before keras-tuner ended it
        where = f"after its last epoch ({epochs}): nothing is left to train"
    print(f"tune: resuming the trial from its backup in {folder / 'backup'} {where}", flush=True)
    return saved[: state.epoch]


def _parts(x: data.Arrays, pipeline: data.PipelineConfig, state: BackupState, epochs: int):
    """The fits left: the rest of an interrupted epoch, then the whole epochs, each as
    (batches, first epoch, end epoch, callbacks of its own)."""
    if state.step:
        rest = data.rest_of_epoch(x, pipeline, epoch=state.epoch, skip=state.step)
        yield rest, state.epoch, state.epoch + 1, [RestoreEpochMetrics(state)]
    first_whole = state.epoch + (1 if state.step else 0)
    if first_whole < epochs:
        counter = data.EpochCounter(first_whole)
        whole = data.training_pipeline(x, pipeline, counter=counter)
        yield whole, first_whole, epochs, [counter]


def _history(model: keras.Model, rows: list[dict[str, float]]) -> keras.callbacks.History:
    """The whole trial's history, read from its epochs' rows."""
    history = keras.callbacks.History()
    history.set_model(model)
    history.epoch = list(range(len(rows)))
    history.history = {k: [row.get(k, math.nan) for row in rows] for k in (rows[0] if rows else {})}
    return history
