"""Train the finder (relunet.training.finder) after the digit model, in the same run dir,
resumable as the digit model is: `relunet train --finder-steps N` (the robust preset's).

Its rows are drawn from the run's training split (relunet.data.rows), a step's rows a
function of (seed, step) alone; its state is backed up every `--backup-every` steps into
`finder_backup/` (relunet.training.backup, the digit model's mechanism), and a run killed
in the middle continues from there with the rows it would have had. When it is trained,
`finder.keras` is written beside `best.keras`, and the finder is calibrated on rows of the
validation split's digits: something is called "not a digit" only where its probability
reaches what at most REJECTED_ROWS of those rows reach anywhere.
"""

from __future__ import annotations

import math
import zipfile
from typing import Any

import keras
import numpy as np
import tensorflow as tf

from relunet.base.errors import RelunetError
from relunet.base.files import TMP_PREFIX, move_into_place
from relunet.base.mnist import OTHER
from relunet.config import TrainConfig
from relunet.data.rows import ROWS, WIDTH, draw_rows, not_digits, rows_pipeline
from relunet.data.splits import Arrays
from relunet.training.backup import AtomicBackupAndRestore, BackupState, RestoreEpochMetrics
from relunet.training.callbacks import StepProgress, StopOnSignal
from relunet.training.finder import Finder, centres_of
from relunet.training.rundir import RunDir
from relunet.training.runtime import progress_verbosity

LEARNING_RATE = 2e-3  # Adam's, decayed to 0 over the steps (cosine)
STEPS_PER_CALL = 50  # train steps per call into the compiled step
REJECTED_ROWS = 0.005  # the share of the validation split's numbers the finder may reject
CHECK_ROWS = 1024  # rows of the validation split's digits it is calibrated and checked on


def train_finder(
    config: TrainConfig, run_dir: RunDir, train: Arrays, val: Arrays | None
) -> dict[str, Any] | None:
    """Train (or resume, or find trained) the run's finder; return what it measured on
    the validation split's rows, or None without --finder-steps."""
    if not config.finder_steps:
        return None
    steps = config.finder_steps
    finder = build_finder(steps)
    backup = AtomicBackupAndRestore(
        run_dir.finder_backup,
        save_freq=config.backup_every,
        delete_checkpoint=False,
        fingerprint=config.fingerprint(),
        steps_per_epoch=steps,
        epochs=1,
    )
    state = backup.restore(finder)
    if state is None and run_dir.finder.is_file():
        finder = load_finder(run_dir)
        print(f"finder: all {steps} steps were trained; {run_dir.finder}", flush=True)
    else:
        _fit(finder, config, backup, state or BackupState(0, 0), train)
    checked = calibrate(finder, val if val is not None else train, config.seed)
    _save(finder, run_dir)
    print(
        f"finder: {checked['rows_counted']:.2%} of {checked['rows']} rows of held-out digits "
        f"counted right, not a digit from p={finder.other_above:.3f} "
        f"({checked['rows_rejected']:.2%} rejected); saved {run_dir.finder}",
        flush=True,
    )
    return checked


def build_finder(steps: int) -> Finder:
    """A Finder compiled with Adam, its rate decayed to 0 over `steps` (cosine)."""
    finder = Finder()
    finder.build()
    schedule = keras.optimizers.schedules.CosineDecay(LEARNING_RATE, max(steps, 1))
    finder.compile(
        optimizer=keras.optimizers.Adam(schedule),
        jit_compile=True,
        steps_per_execution=STEPS_PER_CALL,
    )
    finder.optimizer.build(finder.trainable_variables)
    return finder


def _fit(finder: Finder, config: TrainConfig, backup, state: BackupState, train: Arrays) -> None:
    """The steps left, from the backup's; SIGTERM and SIGINT back up and stop."""
    steps = config.finder_steps
    if state.epoch >= 1:
        return
    if state.step:
        print(f"finder: resuming from {backup.path} at step {state.step} of {steps}", flush=True)
    rows = rows_pipeline(
        train.images,
        train.labels,
        not_digits(config.seed),
        seed=config.seed,
        steps=steps,
        skip=state.step,
    )
    progress = StepProgress(progress_verbosity(config.verbose), steps, 1)
    with StopOnSignal(backup) as stop:
        finder.fit(
            rows,
            epochs=1,
            callbacks=[backup, RestoreEpochMetrics(state), progress, stop],
            verbose=0,
            shuffle=False,  # the rows' order is the pipeline's own (and Keras warns)
        )
    if not math.isfinite(float(finder.loss_tracker.result())):
        raise RelunetError("training the finder stopped: its loss is not finite")


def calibrate(finder: Finder, arrays: Arrays, seed: int) -> dict[str, Any]:
    """Set the finder's `other_above` from CHECK_ROWS rows of `arrays`' digits (no
    letters among them), and say how many of those rows it counts right."""
    key = tf.constant([seed, 0x0CA1], tf.int64)
    batches = [
        draw_rows(
            tf.random.experimental.stateless_fold_in(key, i),
            arrays.images,
            arrays.labels,
            None,
            ROWS,
            WIDTH,
        )
        for i in range(CHECK_ROWS // ROWS)
    ]
    highest, counted = [], []
    for batch in batches:
        kinds, offsets = finder(batch.images)
        for row in range(ROWS):
            _, found, p = centres_of(kinds[row], offsets[row], other_above=1.0)
            highest.append(float(tf.reduce_max(tf.concat([p[:, OTHER], [0.0]], 0))))
            wanted = int(tf.reduce_sum(tf.cast(batch.kinds[row] > 0, tf.int32)))
            counted.append(int(tf.size(found)) == wanted)
    finder.other_above = float(np.quantile(highest, 1.0 - REJECTED_ROWS))
    rejected = float(np.mean(np.array(highest) >= finder.other_above))
    return {
        "rows": len(counted),
        "rows_counted": float(np.mean(counted)),
        "rows_rejected": rejected,
    }


def _save(finder: Finder, run_dir: RunDir) -> None:
    tmp = run_dir.finder.with_name(f"{TMP_PREFIX}{run_dir.finder.name}")
    finder.save(tmp)
    move_into_place(tmp, run_dir.finder)


def load_finder(run_dir: RunDir) -> Finder:
    """The run's finder.keras; RelunetError if it is damaged."""
    try:
        return keras.models.load_model(run_dir.finder, safe_mode=True)
    except (OSError, ValueError, KeyError, zipfile.BadZipFile) as error:
        reason = " ".join(str(error).split())[:160]
        raise RelunetError(
            f"{run_dir.finder} cannot be loaded ({reason}); rerun with --restart to train the "
            "run again."
        ) from None
