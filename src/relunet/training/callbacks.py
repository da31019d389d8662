"""The callbacks `relunet train` adds to Keras's own, those it uses in their place, and
the list a run uses (`make_callbacks`).

Keras reports a whole `steps_per_execution` chunk to callbacks as one "batch" whose
index is the chunk's last step, even when the epoch ends inside it (an epoch of 47
steps reports batch 63). So everything here counts steps with the optimizer's
iteration count, and images with the model's own loss tracker: what really ran.
"""

from __future__ import annotations

import math
import os
import signal
import threading
import time
from pathlib import Path

import keras

from relunet.base.errors import Preempted
from relunet.base.files import TMP_PREFIX, move_into_place
from relunet.config import NO_SPLIT, TrainConfig
from relunet.data.pipelines import EpochCounter
from relunet.training.backup import AtomicBackupAndRestore, optimizer_steps
from relunet.training.rundir import RunDir, append_history
from relunet.training.runtime import progress_verbosity


def images_trained(model: keras.Model) -> int:
    """Images the model's train_step has counted so far this epoch (ReluNet's loss tracker
    weights each batch by its size)."""
    return int(keras.ops.convert_to_numpy(model.loss_tracker.count))


class EpochTimer(keras.callbacks.Callback):
    """Adds `epoch_seconds` (training only, without validation) to each epoch's logs.

    Listed before the history and TensorBoard so that both record it. Also keeps the
    totals for this process: optimizer steps and images really trained, and seconds,
    from which train() reports samples per second.
    """

    def __init__(self):
        super().__init__()
        self.total_seconds, self.total_images, self.total_steps = 0.0, 0, 0
        self.first_chunk_end: float | None = None  # time.time() when the first chunk ended

    def on_epoch_begin(self, epoch, logs=None):
        self._start, self._end = time.perf_counter(), None
        self._steps, self._images = optimizer_steps(self.model), None

    def on_train_batch_end(self, batch, logs=None):
        if self.first_chunk_end is None:  # compilation, then the first steps_per_execution
            self.first_chunk_end = time.time()

    def on_train_batch_begin(self, batch, logs=None):
        if self._images is None:  # after every on_epoch_begin, a resumed epoch's totals too
            self._images = images_trained(self.model)

    def on_test_begin(self, logs=None):
        self._stop_clock()  # validation follows training; its time is not training's

    def on_epoch_end(self, epoch, logs=None):
        self._stop_clock()
        seconds, images, steps = self._end
        self.total_seconds += seconds
        self.total_images += images
        self.total_steps += steps
        if logs is not None:
            logs["epoch_seconds"] = seconds

    def _stop_clock(self) -> None:
        if self._end is None:
            self._end = (
                time.perf_counter() - self._start,
                images_trained(self.model) - (self._images or 0),
                optimizer_steps(self.model) - self._steps,
            )


class StepProgress(keras.callbacks.Callback):
    """A progress bar (Keras's `Progbar`) that counts the optimizer's steps.

    Keras's own `ProgbarLogger` counts whole `steps_per_execution` chunks, so an epoch
    of 47 steps run in chunks of 64 would briefly read 64/47. This one reads the
    optimizer. With `steps_per_epoch` and `epochs` (what relunet.training.train knows)
    it numbers a resumed epoch's steps and the epochs as the whole run does ("Epoch
    2/3", "65/157"), though each fit() call covers only part of the run. Pass
    `verbose=0` to `fit` and this callback in its place: 1 draws a bar, 2 prints one
    line per epoch.
    """

    def __init__(self, verbose: int = 1, steps_per_epoch: int | None = None, epochs=None):
        super().__init__()
        self.verbose, self.steps_per_epoch, self.run_epochs = verbose, steps_per_epoch, epochs

    def on_epoch_begin(self, epoch, logs=None):
        target = self.steps_per_epoch or self.params.get("steps")
        epochs = self.run_epochs or self.params.get("epochs", 1)
        # Steps done before this epoch: the run's earlier epochs, or those before this
        # fit.
        self._before = epoch * target if self.steps_per_epoch else optimizer_steps(self.model)
        self._bar = keras.utils.Progbar(
            target, verbose=self.verbose, unit_name="step", stateless_metrics=set()
        )
        if self.verbose and epochs > 1:
            print(f"Epoch {epoch + 1}/{epochs}", flush=True)

    def on_train_batch_end(self, batch, logs=None):
        if self.verbose == 1:
            self._bar.update(self._steps(), list((logs or {}).items()), finalize=False)

    def on_epoch_end(self, epoch, logs=None):
        if self.verbose:
            self._bar.update(self._steps(), list((logs or {}).items()), finalize=True)

    def _steps(self) -> int:
        return optimizer_steps(self.model) - self._before


class HistoryLog(keras.callbacks.Callback):
    """`CSVLogger`'s history.csv (one row per epoch, the logs in sorted columns), but the
    file is rewritten atomically: a kill or a full disk never leaves half a row."""

    def __init__(self, path: str | os.PathLike):
        super().__init__()
        self.path = Path(path)

    def on_epoch_end(self, epoch, logs=None):
        append_history(self.path, {"epoch": epoch, **{k: logs[k] for k in sorted(logs or {})}})


class BestModel(keras.callbacks.Callback):
    """`ModelCheckpoint`'s job (keep the best model by a logged value, or the latest), but
    the file is written to a temporary and renamed into place, so a kill or a full disk
    never leaves half a best.keras; says so in one line when it improves.

    `monitor=None` keeps the latest model. `initial_value_threshold` is the best value of
    earlier epochs (a resumed run's), as in ModelCheckpoint.
    """

    def __init__(
        self,
        filepath: str | os.PathLike,
        monitor: str | None = "val_accuracy",
        initial_value_threshold: float | None = None,
    ):
        super().__init__()
        self.path, self.monitor, self.best = Path(filepath), monitor, initial_value_threshold

    def on_epoch_end(self, epoch, logs=None):
        if self.monitor is None:
            self._save()
            return
        value = (logs or {}).get(self.monitor)
        if value is None or not math.isfinite(value):
            return
        if self.best is None or value > self.best:
            was = "None" if self.best is None else f"{self.best:.5f}"
            self._save()
            self.best = float(value)
            print(
                f"Epoch {epoch + 1}: {self.monitor} improved from {was} to {self.best:.5f}; "
                f"saved {self.path}",
                flush=True,
            )

    def _save(self) -> None:
        tmp = self.path.with_name(f"{TMP_PREFIX}{self.path.name}")
        try:
            self.model.save(tmp)
        except OSError as error:
            tmp.unlink(missing_ok=True)
            error.filename = error.filename or str(self.path)
            raise
        move_into_place(tmp, self.path)


class StopOnSignal(keras.callbacks.Callback):
    """On SIGTERM or SIGINT, finish the current chunk of steps, write a backup and stop.

    The signal only sets a flag; the backup is written between steps, where the state
    is whole, and `Preempted` then ends `fit` before any epoch-end work (no partial
    history row, no checkpoint of half an epoch). A chunk that ended the epoch lets the
    epoch end first (validation, history, the epoch-end backup), so no backup ever
    records a finished epoch as unfinished. List it after the backup callback. Use as
    a context manager around `fit`: it installs the handlers and puts the old ones back.
    """

    SIGNALS = (signal.SIGTERM, signal.SIGINT)

    def __init__(self, backup: AtomicBackupAndRestore):
        super().__init__()
        self.backup, self.received, self._previous = backup, None, {}

    def __enter__(self) -> StopOnSignal:
        if threading.current_thread() is threading.main_thread():
            self._previous = {s: signal.signal(s, self._handle) for s in self.SIGNALS}
        return self

    def __exit__(self, exc_type, *exc) -> None:
        for s, handler in self._previous.items():
            signal.signal(s, handler)
        if self.received and exc_type is None:  # after the last epoch's end and its backup
            raise Preempted(
                f"{self.received} received; backup written at the end of the last epoch"
            )

    def _handle(self, signum, frame) -> None:
        self.received = signal.Signals(signum).name

    def on_epoch_begin(self, epoch, logs=None):
        self._epoch = epoch

    def on_train_batch_end(self, batch, logs=None):
        if self.received and self.backup.position[0] == self._epoch:  # inside the epoch
            self.backup.save_now()
            epoch, step = self.backup.position
            raise Preempted(
                f"{self.received} received; backup written at epoch {epoch + 1}, step {step}"
            )

    def on_epoch_end(self, epoch, logs=None):
        if self.received:  # the backup callback, listed before, has saved the epoch's end
            raise Preempted(
                f"{self.received} received; backup written at the end of epoch {epoch + 1}"
            )


def make_callbacks(
    run: RunDir,
    config: TrainConfig,
    steps: int,
    *,
    timer: EpochTimer,
    backup: AtomicBackupAndRestore,
    counter: EpochCounter,
    best_so_far: float | None = None,
) -> list[keras.callbacks.Callback]:
    """A run's callbacks. The counter tells the training pipeline which epoch begins.
    Order matters at epoch end: the timer writes into the logs, the best model is saved
    (the latest, without validation), the history row is written, and only then the
    backup, so a backup never runs ahead of the history."""
    monitor = None if config.val_split == NO_SPLIT else "val_accuracy"  # None: the latest
    return [
        counter,
        timer,
        BestModel(run.best, monitor=monitor, initial_value_threshold=best_so_far),
        HistoryLog(run.history),
        backup,
        keras.callbacks.TensorBoard(log_dir=str(run.logs)),
        keras.callbacks.TerminateOnNaN(),
        StepProgress(progress_verbosity(config.verbose), steps, config.epochs),
    ]
