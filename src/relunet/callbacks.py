"""The callbacks `relunet train` adds to, or puts in place of, Keras's own.

Keras reports a whole `steps_per_execution` chunk to callbacks as one "batch" whose
index is the chunk's last step, even when the epoch ends inside it (an epoch of 47
steps reports batch 63). So everything here counts steps with the optimizer's
iteration count, and images with the model's own loss tracker: what really ran.
"""

from __future__ import annotations

import csv
import io
import os
import signal
import threading
import time
from pathlib import Path

import keras

from relunet.backup import AtomicBackupAndRestore, optimizer_steps
from relunet.errors import Preempted
from relunet.rundir import fsync_dir, read_history, write_text_atomic


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


class ProgressBar(keras.callbacks.ProgbarLogger):
    """Keras's progress bar, counting the optimizer's steps instead of Keras's chunks.

    With `steps_per_epoch` and `epochs` (what relunet.train knows) it also numbers a
    resumed epoch's steps and the epochs as the whole run does ("Epoch 2/3", "65/157"),
    though each fit() call covers only part of the run.
    """

    def __init__(self, steps_per_epoch: int | None = None, epochs: int | None = None):
        super().__init__()
        self.steps_per_epoch, self.run_epochs = steps_per_epoch, epochs

    def set_params(self, params):
        super().set_params(params)
        if self.run_epochs:
            self.epochs = self.run_epochs
        if self.steps_per_epoch:
            self.target = self.steps_per_epoch

    def on_epoch_begin(self, epoch, logs=None):
        super().on_epoch_begin(epoch, logs)
        # Steps done before this epoch: the run's earlier epochs, or none for a plain fit.
        self._before = (
            epoch * self.steps_per_epoch if self.steps_per_epoch else (optimizer_steps(self.model))
        )

    def on_train_batch_end(self, batch, logs=None):
        super().on_train_batch_end(optimizer_steps(self.model) - self._before - 1, logs)


class FollowEpochs(keras.callbacks.Callback):
    """Make each pass of a relunet training pipeline the epoch `fit` is starting.

    Keras makes the epoch's iterator after `on_epoch_begin`, so the pass reads the
    number set here; a batch looked at before `fit` (a pass begun) changes nothing."""

    def __init__(self, next_epoch):
        super().__init__()
        self.next_epoch = next_epoch

    def on_epoch_begin(self, epoch, logs=None):
        self.next_epoch.assign(epoch)


class HistoryLog(keras.callbacks.Callback):
    """`CSVLogger`'s history.csv (one row per epoch, the logs in sorted columns), but the
    file is rewritten atomically: a kill or a full disk never leaves half a row."""

    def __init__(self, path: str | os.PathLike):
        super().__init__()
        self.path = Path(path)

    def on_epoch_end(self, epoch, logs=None):
        rows = read_history(self.path)
        row = {"epoch": epoch, **{k: logs[k] for k in sorted(logs or {})}}
        fields = list(rows[0]) if rows else list(row)
        out = io.StringIO()
        writer = csv.DictWriter(
            out, fieldnames=fields, restval="NA", extrasaction="ignore", lineterminator="\n"
        )
        writer.writeheader()
        writer.writerows([*rows, row])
        write_text_atomic(self.path, out.getvalue())


class BestModelCheckpoint(keras.callbacks.ModelCheckpoint):
    """`ModelCheckpoint` that saves to a temporary file and renames it into place, so a
    kill or a full disk never leaves half a best.keras; says so in one line."""

    def __init__(self, filepath: str | os.PathLike, **kwargs):
        self.final = Path(filepath)
        self.tmp = self.final.with_name(f"tmp-{self.final.name}")
        super().__init__(str(self.tmp), verbose=0, **kwargs)

    def on_epoch_end(self, epoch, logs=None):
        before = self.best
        try:
            super().on_epoch_end(epoch, logs)
            if self.tmp.is_file():
                with open(self.tmp, "rb") as f:
                    os.fsync(f.fileno())
                os.replace(self.tmp, self.final)
                fsync_dir(self.final.parent)
        except OSError as error:
            self.tmp.unlink(missing_ok=True)
            error.filename = error.filename or str(self.final)
            raise
        if self.save_best_only and self.best != before:
            was = "None" if before is None else f"{before:.5f}"
            print(
                f"Epoch {epoch + 1}: {self.monitor} improved from {was} to {self.best:.5f}; "
                f"saved {self.final}",
                flush=True,
            )


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
