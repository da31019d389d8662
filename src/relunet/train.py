"""Train ReluNet with plain `model.fit`, made resumable by Keras callbacks.

`train(config)` is what `relunet train` runs (the command line runs its preflight first,
then `run`); notebooks can call it too, or build the same pieces themselves
(`relunet.data`, `relunet.model`, `make_callbacks`). Rerunning with the same run dir
continues from the last backup, at the next unseen batch.
Everything that differs under tf.distribute is asked of one `Devices` object
(`relunet.distribute`); on one device its answers are the plain ones.
"""

from __future__ import annotations

import math
import sys
import time
import zipfile
from typing import Any

import keras
import tensorflow as tf

from relunet import _compat, data, distribute, preflight
from relunet.backup import AtomicBackupAndRestore, BackupState, RestoreEpochMetrics, optimizer_steps
from relunet.callbacks import BestModel, EpochTimer, HistoryLog, StepProgress
from relunet.config import NO_SPLIT, AugmentConfig, ModelConfig, OptimConfig, TrainConfig, take
from relunet.errors import Preempted, RelunetError, TrainingDiverged, WorkerLost  # noqa: F401
from relunet.files import write_json_atomic
from relunet.model import build_model, load_model
from relunet.rundir import RunDir


def train(config: TrainConfig, timeline: dict[str, float] | None = None) -> dict[str, Any]:
    """Train (or resume) the run described by `config`; return the metrics it wrote.

    Raises RelunetError for bad input (relunet.preflight.train's checks), `Preempted`
    when SIGTERM or SIGINT stopped it after a final backup. Under `--strategy
    multiworker` every worker calls this; only the chief writes the run dir and returns
    its metrics, the others return {}. `timeline` (phase -> time.time()) gets the
    phases of this run added, and goes into metrics.json.
    """
    return run(preflight.train(config), timeline)


def run(config: TrainConfig, timeline: dict[str, float] | None = None) -> dict[str, Any]:
    """`train` for a config that has passed `relunet.preflight.train`."""
    timeline = {} if timeline is None else timeline
    set_threads(config.threads)
    devices = distribute.devices_for(config)  # before TensorFlow runs anything
    run = RunDir(config.run_dir)  # every worker decides from the chief's run dir
    with run.opened(config, writer=devices.chief):
        if run.finished():
            devices.barrier()
            return run.read_metrics() if devices.chief else {}
        splits = data.load_splits(config)
        timeline["data"] = time.time()
        steps = data.steps_per_epoch(splits.train, config.batch_size)
        # Seeded after the data: preparing it first changes nothing.
        seed_everything(config.seed, config.deterministic)
        with devices.strategy.scope():
            model = build_for(config, devices, steps)
        with devices.writing_dir(run.path) as where:
            out = RunDir(where) if where != run.path else run  # where this process writes
            backup = AtomicBackupAndRestore(
                out.backup,
                save_freq=config.backup_every,
                delete_checkpoint=False,
                fingerprint=config.fingerprint(),
                steps_per_epoch=steps,
                epochs=config.epochs,
            )
            with devices.strategy.scope():
                state = resume_point(run, config, backup, model, devices.chief)
            timer, counter = EpochTimer(), data.EpochCounter()
            if state.epoch < config.epochs:
                callbacks = make_callbacks(
                    out,
                    config,
                    steps,
                    timer=timer,
                    backup=backup,
                    counter=counter,
                    best_so_far=run.best_value_before(state.epoch),
                )
                fit_epochs(model, config, splits, state, callbacks, devices, backup, counter)
            timeline.update(first_chunk=timer.first_chunk_end, trained=time.time())
        if not devices.chief:
            devices.barrier()  # until the chief has written the results
            return {}
        # Without validation the model that just finished is the one kept; else best.keras
        # is (and a model on several replicas is reloaded to be tested on this process).
        keep = state.epoch < config.epochs and devices.replicas == 1 and not splits.val
        facts = {
            "optimizer_steps": optimizer_steps(model) or None,
            "backups_written": backup.written,  # by this process
            "step": how_it_ran(model),
            "timeline": timeline,
        }
        metrics = write_metrics(
            run, config, model if keep else load_best(run), splits, timer, facts
        )
        backup.delete()  # the run is trained and tested: the backup has served
        devices.barrier()  # so that the workers leave together
        return metrics


def build_for(config: TrainConfig, devices: distribute.Devices, steps: int) -> keras.Model:
    """The configured model, compiled for these devices (see build_model)."""
    if devices.describe():
        print(f"run: {devices.describe()}", flush=True)
    return build_model(
        take(ModelConfig, config),
        take(OptimConfig, config),
        decay_steps=config.epochs * steps,
        grad_norms=config.grad_norms,
    )


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


def fit_epochs(
    model: keras.Model,
    config: TrainConfig,
    splits: data.Splits,
    state: BackupState,
    callbacks: list[keras.callbacks.Callback],
    devices: distribute.Devices,
    backup: AtomicBackupAndRestore,
    counter: data.EpochCounter,
) -> None:
    """Train from `state` to the last epoch: the rest of an interrupted epoch first, on
    its own, then whole epochs (their order from `counter`, which is in `callbacks`).
    Raises TrainingDiverged if the loss stops being finite."""
    val = (
        devices.shard(data.evaluation_pipeline(splits.val, config.batch_size))
        if splits.val
        else None
    )
    pipeline = dict(
        arrays=splits.train,
        batch_size=config.batch_size,
        seed=config.seed,
        label_smoothing=config.label_smoothing,
        augment=take(AugmentConfig, config),
    )
    parts = []  # (batches, first epoch, end epoch, extra callbacks) for each fit
    if state.step:
        rest = data.rest_of_epoch(epoch=state.epoch, skip=state.step, **pipeline)
        parts.append((rest, state.epoch, state.epoch + 1, [RestoreEpochMetrics(state)]))
    first_whole = state.epoch + (1 if state.step else 0)
    if first_whole < config.epochs:
        whole = data.training_pipeline(counter=counter, **pipeline)
        parts.append((whole, first_whole, config.epochs, []))
    losses = []
    with devices.on_signal(backup) as stop, devices.lost_workers(backup):
        for batches, first, last, extra in parts:
            history = model.fit(
                devices.shard(batches),
                initial_epoch=first,
                epochs=last,
                validation_data=val,
                callbacks=[*callbacks, *extra, *([stop] if stop else [])],
                shuffle=False,  # each epoch's order is the pipeline's own
                verbose=0,  # StepProgress, in callbacks, reports instead
            )
            losses += history.history.get("loss", [])
            if not all(math.isfinite(loss) for loss in losses):
                raise TrainingDiverged(
                    f"training stopped: the loss became {losses[-1]} in epoch "
                    f"{first + len(history.history['loss'])}; try a smaller --lr"
                )


def make_callbacks(
    run: RunDir,
    config: TrainConfig,
    steps: int,
    *,
    timer: EpochTimer,
    backup: AtomicBackupAndRestore,
    counter: data.EpochCounter,
    best_so_far: float | None = None,
) -> list[keras.callbacks.Callback]:
    """The run's callbacks. The counter tells the training pipeline which epoch begins.
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


def resume_point(
    run: RunDir,
    config: TrainConfig,
    backup: AtomicBackupAndRestore,
    model: keras.Model,
    chief: bool = True,
) -> BackupState:
    """Where training continues, with the model restored to it; history trimmed to match.

    Every worker restores from the chief's backup, so all continue from the same step.
    The backup is removed only once the run is tested; a run without one whose history
    is complete and whose best model is there (its backup removed by hand) is only
    evaluated, never trained over.
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
    if state.epoch == config.epochs:
        print(f"run: all {config.epochs} epochs were trained; evaluating", flush=True)
    elif state.epoch or state.step:
        print(
            f"run: resuming from the backup in {run.backup} at epoch {state.epoch + 1} "
            f"of {config.epochs}, step {state.step}",
            flush=True,
        )
    return state


def load_best(run: RunDir) -> keras.Model:
    """The run's best.keras; RelunetError if it is missing or damaged."""
    try:
        return load_model(str(run.best))
    except (OSError, ValueError, KeyError, zipfile.BadZipFile) as error:
        reason = " ".join(str(error).split())[:160]
        raise RelunetError(
            f"{run.best} cannot be loaded ({reason}); rerun with --restart to train the run again."
        ) from None


def write_metrics(
    run: RunDir,
    config: TrainConfig,
    model: keras.Model,
    splits: data.Splits,
    timer: EpochTimer,
    facts: dict[str, Any],
) -> dict[str, Any]:
    """Test the run's model once and write metrics.json, with `facts` (the optimizer steps
    the run trained, None when an earlier process trained them all; the replicas; the
    timeline of this process's phases, as time.time() values)."""
    test = model.evaluate(
        data.evaluation_pipeline(splits.test, config.batch_size), verbose=0, return_dict=True
    )
    facts["timeline"]["evaluated"] = time.time()
    rows = run.history_rows()
    metrics = {
        "test_accuracy": test["accuracy"],
        "test_loss": test["loss"],
        "best_val_accuracy": RunDir.best_value(rows),
        "epochs_completed": len(rows),
        "train_seconds": round(sum(float(r["epoch_seconds"]) for r in rows), 3),
        "train_samples_per_second": round(timer.total_images / timer.total_seconds, 1)
        if timer.total_seconds
        else None,  # this process's epochs, counted by the model
        "train_examples": len(splits.train),
        "data_source": splits.source.description,
        "best_model": str(run.best),
        **facts,
    }
    write_json_atomic(run.metrics, metrics)
    print(
        f"test: accuracy {metrics['test_accuracy']:.4f}, loss {metrics['test_loss']:.4f} "
        f"({config.test_split}); metrics written to {run.metrics}",
        flush=True,
    )
    return metrics


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
    """A progress bar on a terminal, one line per epoch in logs and CI."""
    if verbose is not None:
        return verbose
    return 1 if sys.stdout.isatty() else 2
