"""`relunet train`: train ReluNet with plain `model.fit`, made resumable by Keras callbacks.

`train(config)` is what the command runs (the command line runs its preflight first,
then `run`); notebooks can call it too (`relunet.train`), or build the same pieces
themselves (`relunet.data`, `relunet.training.model`,
`relunet.training.callbacks.make_callbacks`). Rerunning with the same run dir continues
from the last backup, at the next unseen batch.
Everything that differs under tf.distribute is asked of one `Devices` object
(`relunet.training.distribute`); on one device its answers are the plain ones.
"""

from __future__ import annotations

import math
import shutil
import time
import zipfile
from dataclasses import dataclass
from typing import Any

import keras
import numpy as np

from relunet import data, preflight
from relunet.base.errors import Preempted, RelunetError, TrainingDiverged, WorkerLost  # noqa: F401
from relunet.base.files import TMP_PREFIX, move_into_place, write_json_atomic
from relunet.config import ModelConfig, OptimConfig, TrainConfig, take
from relunet.training import distribute
from relunet.training.backup import (
    AtomicBackupAndRestore,
    BackupState,
    RestoreEpochMetrics,
    optimizer_steps,
)
from relunet.training.calibrate import Calibration, calibration, ece
from relunet.training.callbacks import EpochTimer, make_callbacks
from relunet.training.model import build_model, calibrated, load_model
from relunet.training.reader import train_finder
from relunet.training.rundir import RunDir
from relunet.training.runtime import how_it_ran, seed_everything, set_threads


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
    """`train` for a config that has passed `relunet.preflight.train`: the steps of a run."""
    timeline = {} if timeline is None else timeline
    set_threads(config.threads)
    devices = distribute.devices_for(config)  # before TensorFlow runs anything
    run_dir = RunDir(config.run_dir)  # every worker decides from the chief's run dir
    with run_dir.opened(config, writer=devices.chief):
        if run_dir.finished():
            devices.barrier()
            return run_dir.read_metrics() if devices.chief else {}
        splits = data.load_splits(config)
        timeline["data"] = time.time()
        seed_everything(config.seed, config.deterministic)  # preparing data first changes nothing
        trained = train_from_last_backup(config, run_dir, splits, devices)
        timeline.update(first_chunk=trained.timer.first_chunk_end, trained=time.time())
        if not devices.chief:
            devices.barrier()  # until the chief has written the results
            return {}
        fitted = calibrate_best(run_dir, splits.val) if splits.val is not None else None
        found = train_finder(config, run_dir, splits.train, splits.val)
        timeline["finder"] = time.time()
        metrics = test_and_record(config, run_dir, trained, splits, timeline, fitted, found)
        trained.backup.delete()  # the run is trained and tested: the backups have served
        shutil.rmtree(run_dir.finder_backup, ignore_errors=True)
        devices.barrier()  # so that the workers leave together
        return metrics


@dataclass
class Trained:
    """What the training part of a run leaves: the model, its backup, its epoch timer,
    and whether this process trained any epoch (else an earlier one trained them all)."""

    model: keras.Model
    backup: AtomicBackupAndRestore
    timer: EpochTimer
    fitted: bool


def train_from_last_backup(
    config: TrainConfig, run_dir: RunDir, splits: data.Splits, devices: distribute.Devices
) -> Trained:
    """Build the model, restore it from the run's backup, and train the epochs left."""
    steps = data.steps_per_epoch(splits.train, config.batch_size)
    with devices.strategy.scope():
        model = build_for(config, devices, steps)
    with devices.writing_dir(run_dir.path) as where:
        out = RunDir(where) if where != run_dir.path else run_dir  # where this process writes
        backup = AtomicBackupAndRestore(
            out.backup,
            save_freq=config.backup_every,
            delete_checkpoint=False,
            fingerprint=config.fingerprint(),
            steps_per_epoch=steps,
            epochs=config.epochs,
        )
        with devices.strategy.scope():
            state = resume_point(run_dir, config, backup, model, devices.chief)
        timer, counter = EpochTimer(), data.EpochCounter()
        fitted = state.epoch < config.epochs
        if fitted:
            callbacks = make_callbacks(
                out,
                config,
                steps,
                timer=timer,
                backup=backup,
                counter=counter,
                best_so_far=run_dir.best_value_before(state.epoch),
            )
            fit_epochs(model, config, splits, state, callbacks, devices, backup, counter)
    return Trained(model, backup, timer, fitted)


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


def resume_point(
    run_dir: RunDir,
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
    state = backup.restore(model, source=run_dir.backup)
    if state is None and len(run_dir.history_rows()) >= config.epochs and run_dir.best.is_file():
        print(f"run: all {config.epochs} epochs were trained; evaluating {run_dir.best}")
        return BackupState(config.epochs, 0)
    state = state or BackupState(0, 0)
    if chief:
        run_dir.keep_history_before(state.epoch)
    if state.epoch == config.epochs:
        print(f"run: all {config.epochs} epochs were trained; evaluating", flush=True)
    elif state.epoch or state.step:
        print(
            f"run: resuming from the backup in {run_dir.backup} at epoch {state.epoch + 1} "
            f"of {config.epochs}, step {state.step}",
            flush=True,
        )
    return state


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
    val = None
    if splits.val is not None:
        val = devices.shard(data.evaluation_pipeline(splits.val, batch_size=config.batch_size))
    pipeline = data.PipelineConfig.of(config)
    parts = []  # (batches, first epoch, end epoch, extra callbacks) for each fit
    if state.step:
        rest = data.rest_of_epoch(splits.train, pipeline, epoch=state.epoch, skip=state.step)
        parts.append((rest, state.epoch, state.epoch + 1, [RestoreEpochMetrics(state)]))
    first_whole = state.epoch + (1 if state.step else 0)
    if first_whole < config.epochs:
        whole = data.training_pipeline(splits.train, pipeline, counter=counter)
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


def calibrate_best(run_dir: RunDir, val: data.Arrays) -> Calibration:
    """Fit best.keras's temperature and its "not a digit" threshold on the validation
    split (relunet.training.calibrate), and write it back with them."""
    model = load_best(run_dir)
    found = calibration(logits_of(model, val), val.labels.numpy())
    model.temperature, model.reject_below = found.temperature, found.reject_below
    tmp = run_dir.best.with_name(f"{TMP_PREFIX}{run_dir.best.name}")
    model.save(tmp)
    move_into_place(tmp, run_dir.best)
    print(
        f"calibrate: temperature {found.temperature:.3f} on {found.images} validation images "
        f"(ECE {found.ece_before:.4f} -> {found.ece_after:.4f}); not a digit below "
        f"p={found.reject_below:.3f}",
        flush=True,
    )
    return found


def logits_of(model: keras.Model, arrays: data.Arrays) -> np.ndarray:
    """The model's logits [n, 10] of a split held in memory."""
    return np.concatenate(
        [
            model(images, training=False).numpy()
            for images, _ in data.evaluation_pipeline(arrays, batch_size=1024)
        ]
    )


def test_and_record(
    config: TrainConfig,
    run_dir: RunDir,
    trained: Trained,
    splits: data.Splits,
    timeline: dict[str, float],
    fitted: Calibration | None = None,
    found: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """Test the run's model once and write metrics.json, with what the finder measured.
    Without validation the model that just finished is the one kept; else best.keras is
    (and a model on several replicas is reloaded to be tested on this process), calibrated."""
    model = trained.model
    keep = trained.fitted and model.distribute_strategy.num_replicas_in_sync == 1
    if not (keep and not splits.val):
        model = load_best(run_dir)
    test = model.evaluate(
        data.evaluation_pipeline(splits.test, batch_size=config.batch_size),
        verbose=0,
        return_dict=True,
    )
    probabilities, rejected = (t.numpy() for t in calibrated(model, logits_of(model, splits.test)))
    labels = splits.test.labels.numpy()
    timeline["evaluated"] = time.time()
    rows = run_dir.history_rows()
    timer = trained.timer
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
        "best_model": str(run_dir.best),
        "test_ece": round(ece(probabilities, labels), 5),
        "test_rejected": round(float(rejected.mean()), 5),  # answered "not a digit"
        "calibration": fitted.to_dict() if fitted else None,
        "finder": found,
        "optimizer_steps": optimizer_steps(trained.model) or None,  # None: trained before
        "backups_written": trained.backup.written,  # by this process
        "step": how_it_ran(trained.model),
        "timeline": timeline,
    }
    write_json_atomic(run_dir.metrics, metrics)
    print(
        f"test: accuracy {metrics['test_accuracy']:.4f}, loss {metrics['test_loss']:.4f}, "
        f"ECE {metrics['test_ece']:.4f}, not a digit {metrics['test_rejected']:.2%} "
        f"({config.test_split}); metrics written to {run_dir.metrics}",
        flush=True,
    )
    return metrics


def load_best(run_dir: RunDir) -> keras.Model:
    """The run's best.keras; RelunetError if it is missing or damaged."""
    try:
        return load_model(str(run_dir.best))
    except (OSError, ValueError, KeyError, zipfile.BadZipFile) as error:
        reason = " ".join(str(error).split())[:160]
        raise RelunetError(
            f"{run_dir.best} cannot be loaded ({reason}); rerun with --restart to train the "
            "run again."
        ) from None
