"""Train ReluNet with plain `model.fit`, made resumable by Keras callbacks.

`train(config)` is what `relunet train` runs; notebooks can call it too, or build the
same pieces themselves (`relunet.data`, `relunet.model`, `make_callbacks`). Rerunning
with the same run dir continues from the last backup instead of starting over.
"""

from __future__ import annotations

import json
import math
import sys
import time
from pathlib import Path
from typing import Any

import keras
import tensorflow as tf

from relunet import data
from relunet.config import NO_SPLIT, TrainConfig
from relunet.errors import RelunetError
from relunet.model import build_model, load_model
from relunet.rundir import RunDir, write_json_atomic


class TrainingDiverged(RuntimeError):
    """The loss became NaN or infinite, so training stopped early."""


class BackupEveryNBatches(keras.callbacks.BackupAndRestore):
    """BackupAndRestore that saves every `save_freq` batches and also at each epoch end.

    Keras saves at epoch ends only when `save_freq="epoch"`; a backup at the end of
    every epoch as well means a rerun never repeats a finished epoch.
    """

    def on_epoch_end(self, epoch, logs=None):
        super().on_epoch_end(epoch, logs)
        if self.save_freq != "epoch":
            self._save_model()


class EpochTimer(keras.callbacks.Callback):
    """Adds `epoch_seconds` (training only, without validation) to each epoch's logs.

    Listed before CSVLogger and TensorBoard so that both record it. Also keeps the
    totals for this process, from which train() reports samples per second.
    """

    def __init__(self, samples_per_epoch: int, batch_size: int):
        super().__init__()
        self.samples_per_epoch, self.batch_size = samples_per_epoch, batch_size
        self.total_seconds, self.total_samples = 0.0, 0

    def on_epoch_begin(self, epoch, logs=None):
        self._start, self._train_end, self._steps = time.perf_counter(), None, 0

    def on_train_batch_end(self, batch, logs=None):
        self._steps = batch + 1

    def on_test_begin(self, logs=None):
        if self._train_end is None:
            self._train_end = time.perf_counter()

    def on_epoch_end(self, epoch, logs=None):
        seconds = (self._train_end or time.perf_counter()) - self._start
        samples = min(self._steps * self.batch_size, self.samples_per_epoch)
        self.total_seconds += seconds
        self.total_samples += samples
        if logs is not None:
            logs["epoch_seconds"] = seconds


def seed_everything(seed: int, deterministic: bool = False) -> None:
    """Seed Python, NumPy and TensorFlow; optionally make TensorFlow ops deterministic."""
    keras.utils.set_random_seed(seed)
    if deterministic:
        tf.config.experimental.enable_op_determinism()


def make_callbacks(run: RunDir, config: TrainConfig, timer: EpochTimer,
                   best_so_far: float | None = None) -> list[keras.callbacks.Callback]:
    """The run's callbacks. Order matters at epoch end: the timer writes into the logs,
    the best model is saved (the latest, without validation), the history row is
    written, and only then the backup."""
    if config.val_split == NO_SPLIT:  # nothing to choose by: keep the latest model
        checkpoint = keras.callbacks.ModelCheckpoint(run.best, save_best_only=False)
    else:
        checkpoint = keras.callbacks.ModelCheckpoint(
            run.best, monitor="val_accuracy", mode="max", save_best_only=True,
            initial_value_threshold=best_so_far, verbose=1)
    return [
        timer,
        checkpoint,
        keras.callbacks.CSVLogger(run.history, append=True),
        BackupEveryNBatches(run.backup, save_freq=config.backup_every, double_checkpoint=True),
        keras.callbacks.TensorBoard(log_dir=str(run.logs)),
        keras.callbacks.TerminateOnNaN(),
    ]


def train(config: TrainConfig) -> dict[str, Any]:
    """Train (or resume) the run described by `config`; return the metrics it wrote."""
    config = config.validate().with_run_dir()
    set_threads(config.threads)
    run = RunDir(config.run_dir)
    resumed = run.claim(config)
    if run.metrics.is_file():
        print(f"run: {run.path} has already finished; its metrics are in {run.metrics}")
        return _read_json(run.metrics)
    print(f"run: {'continuing' if resumed else 'starting'} {run.path}", flush=True)

    validate = config.val_split != NO_SPLIT
    source = data.find_source(config.dataset, config.data_dir, config.tfds_dir)
    splits = [config.train_split, config.test_split] + ([config.val_split] if validate else [])
    train_arrays, test_arrays, *val_arrays = (
        data.load_arrays(split) for split in data.load_tfds(source, splits))
    steps = data.steps_per_epoch(train_arrays, config.batch_size)
    # Seeded after the data is found, so that preparing it first changes nothing.
    seed_everything(config.seed, config.deterministic)
    model = build_model(config.width, config.depth, config.activation, config.init,
                        config.learning_rate, config.jit_compile, config.grad_norms,
                        config.lr_schedule, decay_steps=config.epochs * steps,
                        steps_per_execution=config.steps_per_execution)

    timer = EpochTimer(len(train_arrays), config.batch_size)
    done = _resume_point(run, config)
    if done < config.epochs:
        callbacks = make_callbacks(run, config, timer, RunDir.best_value(run.history_rows()))
        history = model.fit(
            data.training_pipeline(train_arrays, config.batch_size, config.seed,
                                   first_epoch=done, label_smoothing=config.label_smoothing),
            steps_per_epoch=steps, epochs=config.epochs, callbacks=callbacks,
            validation_data=data.evaluation_pipeline(val_arrays[0], config.batch_size)
            if validate else None,
            verbose=progress_verbosity(config.verbose), shuffle=False)  # the pipeline shuffles
        losses = history.history.get("loss", [])
        if any(not math.isfinite(loss) for loss in losses):
            raise TrainingDiverged(
                f"training stopped: the loss became {losses[-1]} in epoch "
                f"{done + len(losses)}; try a smaller --lr (best model so far: {run.best})"
            )

    # Without validation the model that just finished is the one saved; else reload the best.
    best = model if not validate and done < config.epochs else load_model(run.best)
    test = best.evaluate(data.evaluation_pipeline(test_arrays, config.batch_size),
                         verbose=0, return_dict=True)
    rows = run.history_rows()
    metrics = {
        "test_accuracy": test["accuracy"],
        "test_loss": test["loss"],
        "best_val_accuracy": RunDir.best_value(rows),
        "epochs_completed": len(rows),
        "train_seconds": round(sum(float(r["epoch_seconds"]) for r in rows), 3),
        "train_samples_per_second": round(timer.total_samples / timer.total_seconds, 1)
        if timer.total_seconds else None,
        "train_examples": len(train_arrays),
        "data_source": source.description,
        "best_model": str(run.best),
    }
    write_json_atomic(run.metrics, metrics)
    print(f"test: accuracy {metrics['test_accuracy']:.4f}, loss {metrics['test_loss']:.4f} "
          f"({config.test_split}); metrics written to {run.metrics}", flush=True)
    return metrics


def set_threads(threads: int | None) -> None:
    """Use `threads` intra-op threads (one inter-op), if TensorFlow has not started yet."""
    if threads is None:
        return
    try:
        tf.config.threading.set_intra_op_parallelism_threads(threads)
        tf.config.threading.set_inter_op_parallelism_threads(1)
    except RuntimeError:  # already initialised, as in a notebook that has run ops
        print("run: TensorFlow has already started; --threads is ignored", flush=True)


def _resume_point(run: RunDir, config: TrainConfig) -> int:
    """Number of finished epochs this run can keep, trimming history rows it cannot.

    fit() removes the backup when it finishes, so a run with a full history, a best
    model and no backup was only interrupted before its final evaluation.
    """
    epoch = run.backup_epoch()
    if epoch is None and len(run.history_rows()) >= config.epochs and run.best.is_file():
        print(f"run: all {config.epochs} epochs were trained; evaluating {run.best}")
        return config.epochs
    run.keep_history_before(epoch or 0)
    if epoch:
        print(f"run: resuming from the backup in {run.backup} at epoch {epoch + 1} "
              f"of {config.epochs}", flush=True)
    return epoch or 0


def progress_verbosity(verbose: int | None) -> int:
    """A progress bar on a terminal, one line per epoch in logs and CI."""
    if verbose is not None:
        return verbose
    return 1 if sys.stdout.isatty() else 2


def _read_json(path: Path) -> dict[str, Any]:
    try:
        return json.loads(path.read_text())
    except (OSError, ValueError) as error:
        raise RelunetError(f"{path} cannot be read ({error}).") from None
