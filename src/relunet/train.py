"""Train ReluNet with plain `model.fit`, made resumable by Keras callbacks.

`train(config)` is what `relunet train` runs; notebooks can call it too, or build the
same pieces themselves (`relunet.data`, `relunet.model`, `make_callbacks`). Rerunning
with the same run dir continues from the last backup, at the next unseen batch.
"""

from __future__ import annotations

import contextlib
import math
import sys
from typing import Any

import keras
import tensorflow as tf

from relunet import data, distribute
from relunet.backup import AtomicBackupAndRestore, BackupState, RestoreEpochMetrics, optimizer_steps
from relunet.callbacks import (BestModelCheckpoint, EpochTimer, HistoryLog, Preempted,  # noqa: F401
                               ProgressBar, StopOnSignal)  # (Preempted is public here)
from relunet.checks import check_output_dir
from relunet.config import NO_SPLIT, TrainConfig
from relunet.model import build_model, load_model
from relunet.rundir import RunDir, read_json, write_json_atomic


class TrainingDiverged(RuntimeError):
    """The loss became NaN or infinite, so training stopped early."""


class WorkerLost(RuntimeError):
    """Another worker of a multi-worker job stopped; the job resumes from its backup."""


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


def make_callbacks(run: RunDir, config: TrainConfig, timer: EpochTimer,
                   backup: AtomicBackupAndRestore, steps: int,
                   best_so_far: float | None = None) -> list[keras.callbacks.Callback]:
    """The run's callbacks. Order matters at epoch end: the timer writes into the logs,
    the best model is saved (the latest, without validation), the history row is
    written, and only then the backup, so a backup never runs ahead of the history."""
    if config.val_split == NO_SPLIT:  # nothing to choose by: keep the latest model
        checkpoint = BestModelCheckpoint(run.best, save_best_only=False)
    else:
        checkpoint = BestModelCheckpoint(
            run.best, monitor="val_accuracy", mode="max", save_best_only=True,
            initial_value_threshold=best_so_far)
    return [
        timer,
        checkpoint,
        HistoryLog(run.history),
        backup,
        keras.callbacks.TensorBoard(log_dir=str(run.logs)),
        keras.callbacks.TerminateOnNaN(),
        ProgressBar(steps, config.epochs),
    ]


def train(config: TrainConfig) -> dict[str, Any]:
    """Train (or resume) the run described by `config`; return the metrics it wrote.

    Raises `Preempted` when SIGTERM or SIGINT stopped it after a final backup. Under
    `--strategy multiworker` every worker calls this; only the chief writes the run dir
    and returns its metrics, the others return {}.
    """
    config = config.validate().with_run_dir()
    check_output_dir(config.run_dir, "run dir")
    set_threads(config.threads)
    strategy = distribute.make_strategy(config)  # before TensorFlow runs anything
    chief = distribute.is_chief(strategy)
    run = RunDir(config.run_dir)  # every worker decides from the chief's run dir
    with contextlib.ExitStack() as held:
        if chief:
            resumed = run.claim(config)
            if config.restart or not run.metrics.is_file():  # it will be written to
                held.enter_context(run.locked())
                run.remove_temporaries()
            if config.restart:
                run.discard_progress()
            run.history_rows()  # a corrupt history is refused before any work
        if run.metrics.is_file() and not config.restart:
            print(f"run: {run.path} has already finished; its metrics are in {run.metrics}")
            distribute.barrier(strategy)
            return read_json(run.metrics) if chief else {}
        if chief:
            print(f"run: {'continuing' if resumed and not config.restart else 'starting'} "
                  f"{run.path}", flush=True)
        return _train(config, strategy, chief, run)


def _train(config: TrainConfig, strategy: tf.distribute.Strategy, chief: bool,
           run: RunDir) -> dict[str, Any]:
    distributed = config.strategy != "default"
    if distributed:
        print(f"run: tf.distribute {distribute.describe(strategy)}; without XLA, one step "
              "per execution", flush=True)

    validate = config.val_split != NO_SPLIT
    source = data.find_source(config.dataset, config.data_dir, config.tfds_dir)
    splits = [config.train_split, config.test_split] + ([config.val_split] if validate else [])
    train_arrays, test_arrays, *val_arrays = (
        data.load_arrays(split) for split in data.load_tfds(source, splits))
    steps = data.steps_per_epoch(train_arrays, config.batch_size)
    # Seeded after the data is found, so that preparing it first changes nothing.
    seed_everything(config.seed, config.deterministic)
    # Keras turns XLA off under op determinism (not every op is deterministic in XLA).
    # Under tf.distribute XLA cannot compile a step whose variables live on several
    # devices, and Keras 3 fails on steps_per_execution > 1 (keras-team/keras#19246).
    jit_compile = "off" if config.deterministic or distributed else config.jit_compile
    steps_per_execution = 1 if distributed else config.steps_per_execution
    with strategy.scope():
        model = build_model(config.width, config.depth, config.activation, config.init,
                            config.learning_rate, jit_compile, config.grad_norms,
                            config.lr_schedule, decay_steps=config.epochs * steps,
                            steps_per_execution=steps_per_execution)

    with distribute.writing_dir(config.run_dir, strategy) as where:
        out = run if chief else RunDir(where)  # where this process writes
        if not chief:
            out.claim(config)
        backup = AtomicBackupAndRestore(out.backup, save_freq=config.backup_every,
                                        delete_checkpoint=False,
                                        fingerprint=config.fingerprint(),
                                        steps_per_epoch=steps, epochs=config.epochs)
        with strategy.scope():
            state = _resume_point(run, config, backup, model, chief)
        timer = EpochTimer()
        if state.epoch < config.epochs:
            best_so_far = RunDir.best_value(
                [row for row in run.history_rows() if int(row["epoch"]) < state.epoch])
            callbacks = make_callbacks(out, config, timer, backup, steps, best_so_far)
            val_ds = None
            if validate:
                val_ds = distribute.shard_by_data(
                    data.evaluation_pipeline(val_arrays[0], config.batch_size))

            def fit(first_epoch: int, skip: int, epochs: int, extra: list) -> list[float]:
                if skip:  # the rest of an interrupted epoch, on its own
                    batches = data.rest_of_epoch(train_arrays, config.batch_size, config.seed,
                                                 first_epoch, skip, config.label_smoothing)
                else:
                    batches = data.training_pipeline(train_arrays, config.batch_size,
                                                     config.seed, first_epoch,
                                                     config.label_smoothing)
                try:
                    history = model.fit(distribute.shard_by_data(batches),
                                        initial_epoch=first_epoch, epochs=epochs,
                                        validation_data=val_ds, callbacks=callbacks + extra,
                                        verbose=progress_verbosity(config.verbose),
                                        shuffle=False)
                except (tf.errors.UnavailableError, tf.errors.AbortedError) as error:
                    if config.strategy != "multiworker":
                        raise
                    epoch, step = backup.position
                    raise WorkerLost(
                        f"another worker stopped during epoch {epoch + 1}, step {step} "
                        f"({type(error).__name__}); start every worker again with the same "
                        "command to resume from the last backup"
                    ) from None
                return history.history.get("loss", [])

            # One worker alone cannot stop a multi-worker step: there a signal ends the
            # process and the job resumes from the last periodic backup.
            signals = (contextlib.nullcontext(None) if config.strategy == "multiworker"
                       else StopOnSignal(backup))
            with signals as stop:
                stop_callbacks = [stop] if stop else []
                losses = []
                if state.step:  # first the rest of the interrupted epoch, then whole ones
                    losses += fit(state.epoch, state.step, state.epoch + 1,
                                  [RestoreEpochMetrics(state), *stop_callbacks])
                if state.epoch + (1 if state.step else 0) < config.epochs and _finite(losses):
                    losses += fit(state.epoch + (1 if state.step else 0), 0, config.epochs,
                                  stop_callbacks)
            if not _finite(losses):
                raise TrainingDiverged(
                    f"training stopped: the loss became {losses[-1]} in epoch "
                    f"{state.epoch + len(losses)}; try a smaller --lr (best model so far: "
                    f"{run.best})"
                )
            backup.delete()  # the whole run is trained: the backup has served
    if not chief:
        print(f"run: training done; the chief writes the results to {run.path}", flush=True)
        distribute.barrier(strategy)  # until the chief has written them
        return {}

    # Without validation the model that just finished is the one saved; else reload the
    # best. A distributed model is reloaded too, to evaluate on this process alone.
    trained_here = state.epoch < config.epochs
    best = model if not validate and trained_here and not distributed else load_model(run.best)
    test = best.evaluate(data.evaluation_pipeline(test_arrays, config.batch_size),
                         verbose=0, return_dict=True)
    rows = run.history_rows()
    metrics = {
        "test_accuracy": test["accuracy"],
        "test_loss": test["loss"],
        "best_val_accuracy": RunDir.best_value(rows),
        "epochs_completed": len(rows),
        "train_seconds": round(sum(float(r["epoch_seconds"]) for r in rows), 3),
        "train_samples_per_second": round(timer.total_images / timer.total_seconds, 1)
        if timer.total_seconds else None,
        "optimizer_steps": optimizer_steps(model) or None,  # None: trained by an earlier process
        "train_examples": len(train_arrays),
        "data_source": source.description,
        "best_model": str(run.best),
        "replicas": strategy.num_replicas_in_sync,
    }
    write_json_atomic(run.metrics, metrics)
    print(f"test: accuracy {metrics['test_accuracy']:.4f}, loss {metrics['test_loss']:.4f} "
          f"({config.test_split}); metrics written to {run.metrics}", flush=True)
    distribute.barrier(strategy)
    return metrics


def _resume_point(run: RunDir, config: TrainConfig, backup: AtomicBackupAndRestore,
                  model: keras.Model, chief: bool = True) -> BackupState:
    """Where training continues, with the model restored to it; history trimmed to match.

    Every worker restores from the chief's backup, so all continue from the same step.
    The backup is removed only once every epoch is trained, so a run with a full
    history, a best model and no backup was only interrupted before its evaluation.
    """
    if config.restart and not chief:  # the chief is discarding that backup right now
        return BackupState(0, 0)
    state = backup.restore(model, source=run.backup)
    if state is None and len(run.history_rows()) >= config.epochs and run.best.is_file():
        print(f"run: all {config.epochs} epochs were trained; evaluating {run.best}")
        return BackupState(config.epochs, 0)
    state = state or BackupState(0, 0)
    if chief:
        run.keep_history_before(state.epoch)
    if state.epoch or state.step:
        print(f"run: resuming from the backup in {run.backup} at epoch {state.epoch + 1} "
              f"of {config.epochs}, step {state.step}", flush=True)
    return state


def _finite(losses: list[float]) -> bool:
    return all(math.isfinite(loss) for loss in losses)


def progress_verbosity(verbose: int | None) -> int:
    """A progress bar on a terminal, one line per epoch in logs and CI."""
    if verbose is not None:
        return verbose
    return 1 if sys.stdout.isatty() else 2

