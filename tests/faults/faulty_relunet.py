"""`relunet` with faults injected, for the fault suite: a test double, not shipped code.

Runs the real command line in this process, after wrapping two of its functions so a
test can pick the instant a real signal arrives. RELUNET_TEST_FAULT says which:

  signal-in-last-chunk:EPOCH:SIGNAL  when epoch EPOCH (1-based) starts its last chunk
                                     of steps, send this process SIGNAL (TERM, INT or
                                     KILL), so it arrives while that chunk trains
  stall-backup:N:SECONDS             sleep in the Nth backup write, after its weights
                                     file is written and before it is published
  hold-after-epoch:EPOCH:PATH        after epoch EPOCH (1-based) ends, wait until the
                                     file PATH exists (the test says when to go on)
"""

import os
import signal
import sys
import threading
import time

from relunet.base.quiet import import_tensorflow_quietly

import_tensorflow_quietly()  # as the real command does, before TensorFlow is imported

import keras  # noqa: E402

from relunet import cli  # noqa: E402
from relunet.training import backup, train  # noqa: E402
from relunet.training.backup import optimizer_steps  # noqa: E402

FAULT = os.environ.get("RELUNET_TEST_FAULT", "")


class SignalInLastChunk(keras.callbacks.Callback):
    def __init__(self, epoch: int, signum: int, steps: int, chunk: int):
        super().__init__()
        self.epoch, self.signum, self.steps, self.chunk = epoch, signum, steps, chunk

    def on_train_batch_begin(self, batch, logs=None):
        epoch, step = divmod(optimizer_steps(self.model), self.steps)
        if epoch + 1 == self.epoch and self.steps - step <= self.chunk:
            print(
                f"fault: {signal.Signals(self.signum).name} in the last chunk of epoch "
                f"{self.epoch}, from step {step}",
                flush=True,
            )
            # From another thread, a moment later: the chunk is running by then.
            threading.Timer(0.02, os.kill, (os.getpid(), self.signum)).start()
            self.epoch = None


class HoldAfterEpoch(keras.callbacks.Callback):
    def __init__(self, epoch: int, release: str):
        super().__init__()
        self.epoch, self.release = epoch, release

    def on_epoch_end(self, epoch, logs=None):
        if epoch + 1 == self.epoch:
            print(f"fault: holding after epoch {self.epoch}", flush=True)
            while not os.path.exists(self.release):
                time.sleep(0.05)


def _with_fault_callback(make_callbacks):
    kind, epoch, argument = FAULT.split(":", 2)

    def wrapped(run, config, steps, **kwargs):
        callbacks = make_callbacks(run, config, steps, **kwargs)
        if kind == "hold-after-epoch":
            return [*callbacks, HoldAfterEpoch(int(epoch), argument)]
        signum = getattr(signal, f"SIG{argument}")
        return [
            SignalInLastChunk(int(epoch), signum, steps, config.steps_per_execution),
            *callbacks,
        ]

    return wrapped


def _stalling(write, at: int, seconds: float):
    calls = []

    def wrapped(model, path):
        write(model, path)
        calls.append(path)
        if len(calls) == at:
            print(f"fault: stalling backup write {at} before publishing it", flush=True)
            time.sleep(seconds)

    return wrapped


if FAULT.startswith(("signal-in-last-chunk:", "hold-after-epoch:")):
    train.make_callbacks = _with_fault_callback(train.make_callbacks)
elif FAULT.startswith("stall-backup:"):
    _, n, seconds = FAULT.split(":")
    backup._write_variables = _stalling(backup._write_variables, int(n), float(seconds))
elif FAULT:
    raise SystemExit(f"unknown RELUNET_TEST_FAULT {FAULT!r}")

if __name__ == "__main__":
    sys.exit(cli.main())
