"""How TensorFlow runs a command's training: its seeds, its threads, and what the step
really was. Shared by `relunet train`, `tune` and `compare`."""

from __future__ import annotations

import os
import sys
from typing import Any

import keras
import tensorflow as tf

from relunet.base import _compat


def seed_everything(seed: int, deterministic: bool = False) -> None:
    """Seed Python, NumPy and TensorFlow; optionally make TensorFlow ops deterministic."""
    keras.utils.set_random_seed(seed)
    if deterministic:
        tf.config.experimental.enable_op_determinism()


def set_threads(threads: int | None) -> None:
    """Use `threads` intra-op threads (one inter-op), if TensorFlow has not started yet."""
    if threads is None:
        return
    try:
        tf.config.threading.set_intra_op_parallelism_threads(threads)
        tf.config.threading.set_inter_op_parallelism_threads(1)
    except RuntimeError:  # already initialised, as in a notebook that has run ops
        print("run: TensorFlow has already started; --threads is ignored", flush=True)


def progress_verbosity(verbose: int | None) -> int:
    """Keras's verbosity: as asked, else a progress bar on a terminal and one line per
    epoch in logs and CI."""
    if verbose is not None:
        return verbose
    return 1 if sys.stdout.isatty() else 2


def how_it_ran(model: keras.Model) -> dict[str, Any]:
    """What the training step really was, read back from the model and TensorFlow."""
    return {
        "replicas": model.distribute_strategy.num_replicas_in_sync,
        "xla": bool(model.jit_compile),
        "run_eagerly": bool(model.run_eagerly),
        "steps_per_execution": int(model.steps_per_execution),
        "op_determinism": _compat.op_determinism_enabled(),
        "intra_op_threads": tf.config.threading.get_intra_op_parallelism_threads() or None,
    }


def resident_memory_mb() -> float | None:
    """This process's resident memory now, in MiB (Linux's /proc; None elsewhere)."""
    try:
        with open("/proc/self/statm") as statm:
            pages = int(statm.read().split()[1])
    except (OSError, ValueError, IndexError):
        return None
    return round(pages * os.sysconf("SC_PAGE_SIZE") / 2**20, 1)
