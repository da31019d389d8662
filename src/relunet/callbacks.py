"""The small callbacks `relunet train` adds to Keras's own."""

from __future__ import annotations

import signal
import threading
import time

import keras

from relunet.backup import AtomicBackupAndRestore


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


class Preempted(Exception):
    """SIGTERM or SIGINT stopped training after a final backup was written."""


class StopOnSignal(keras.callbacks.Callback):
    """On SIGTERM or SIGINT, finish the current step, write a backup and stop.

    The signal only sets a flag; the backup is written between steps, where the
    state is whole, and `Preempted` then ends `fit` before any epoch-end work (no
    partial history row, no checkpoint of half an epoch). Use as a context manager
    around `fit`: it installs the handlers and puts the old ones back.
    """

    SIGNALS = (signal.SIGTERM, signal.SIGINT)

    def __init__(self, backup: AtomicBackupAndRestore):
        super().__init__()
        self.backup, self.received, self._previous = backup, None, {}

    def __enter__(self) -> "StopOnSignal":
        if threading.current_thread() is threading.main_thread():
            self._previous = {s: signal.signal(s, self._handle) for s in self.SIGNALS}
        return self

    def __exit__(self, *exc) -> None:
        for s, handler in self._previous.items():
            signal.signal(s, handler)

    def _handle(self, signum, frame) -> None:
        self.received = signal.Signals(signum).name

    def on_train_batch_end(self, batch, logs=None):
        if self.received:
            self.backup.save_now()
            epoch, step = self.backup.position
            raise Preempted(f"{self.received} received; backup written at epoch {epoch + 1}, "
                            f"step {step}")
