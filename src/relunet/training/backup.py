"""Crash-safe backups for `fit`, and exact resumption from the middle of an epoch.

Keras's `BackupAndRestore` writes `latest.weights.h5` and then its metadata in place,
so a kill in between can leave a truncated file, or weights that disagree with the
recorded epoch; and it restarts an interrupted epoch from its first batch.
`AtomicBackupAndRestore` is a callback of its own with the same constructor and folder
(a drop-in for Keras's in `fit`'s callbacks), but:

- each backup's variables (model and optimizer) go to a temporary `.npz` file that is
  fsynced and renamed into place under a new name; only then is `manifest.json`
  replaced (same way) to name it, with its sha256, the epoch, the step within it and
  the running values of the epoch's metrics. A reader sees the old backup or the new
  one, never half of one; the previous backup is kept as a fallback. A failed write
  (a full disk) removes its temporary file and leaves the previous backup in charge;
- the position is counted, not inferred: the optimizer's iteration count is the run's
  step counter, so a backup records `divmod(optimizer.iterations, steps_per_epoch)`,
  and the step is always inside its epoch (the epoch-end backup records the next
  epoch, step 0);
- restoring validates every manifest entry (types, ranges, fingerprint, sha256) and
  falls back to the previous backup, saying so; if none can be used the run is
  refused rather than silently started afresh.

The folder holds `manifest.json` and at most two `weights-<n>.npz`.

(About 380 lines, one module on purpose: what a backup writes and what restoring
checks of it, field by field, are one format, and read best side by side.)
"""

from __future__ import annotations

import json
import os
import re
import shutil
import time
import zipfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import keras
import numpy as np

from relunet.base._compat import resume_fit_at_epoch
from relunet.base.errors import RelunetError
from relunet.base.files import move_into_place, remove_temporaries, sha256_file, write_json_atomic
from relunet.base.values import check_count

MANIFEST = "manifest.json"
FORMAT = 2  # the only one: .npz variables, the position counted by the optimizer
_WEIGHTS_NAME = re.compile(r"^weights-(\d{1,12})\.npz$")
_SHA256 = re.compile(r"^[0-9a-f]{64}$")


@dataclass
class BackupState:
    """Where a backup lets training continue: `step` batches into `epoch` (0-based)."""

    epoch: int
    step: int
    metrics: dict[str, list[float]] = field(default_factory=dict)  # metric variable -> value
    weights: str = ""


def optimizer_steps(model: keras.Model) -> int:
    """The optimizer's iteration count: the steps really trained (under tf.distribute too)."""
    return int(keras.ops.convert_to_numpy(model.optimizer.iterations))


class AtomicBackupAndRestore(keras.callbacks.Callback):
    """`keras.callbacks.BackupAndRestore` with atomic writes and step-exact state.

    `steps_per_epoch` (one pass of the training pipeline) and `epochs` let it record and
    check positions; `relunet.training.train` always passes them. Without them (a
    notebook's plain `fit`) it resumes at the backed-up epoch, as Keras's own callback
    does.
    """

    def __init__(
        self,
        backup_dir,
        save_freq="epoch",
        double_checkpoint=True,
        delete_checkpoint=True,
        fingerprint: str | None = None,
        steps_per_epoch: int | None = None,
        epochs: int | None = None,
    ):
        super().__init__()
        if save_freq != "epoch":
            check_count("save_freq", save_freq)
        self.save_freq, self.double_checkpoint = save_freq, double_checkpoint
        self.delete_checkpoint = delete_checkpoint
        self.path = Path(backup_dir)
        self.fingerprint = fingerprint  # of the training configuration that wrote it
        self.steps_per_epoch, self.epochs = steps_per_epoch, epochs
        self.restored: BackupState | None = None
        self.written = 0  # backups this callback has written
        self._epoch, self._steps_at_epoch_begin, self._saved_at = 0, 0, 0

    # -- restoring ----------------------------------------------------------------
    def restore(
        self, model: keras.Model, source: str | os.PathLike | None = None
    ) -> BackupState | None:
        """Load the newest usable backup into `model` (weights and optimizer).

        `source` is another backup folder to read (a worker reads the chief's); by
        default this callback's own. Returns None when there is no backup. Raises
        RelunetError when there is one and none of it can be used, so that nothing is
        trained over it by accident.
        """
        source = Path(source) if source is not None else self.path
        if source == self.path and source.is_dir():
            remove_temporaries(source)
        if not source.is_dir() or not any(source.iterdir()):
            return None
        manifest = _read_manifest(source)
        if manifest.get("format") != FORMAT:
            raise RelunetError(
                f"The backup in {source} is not in the format this relunet writes (format "
                f"{FORMAT}; its manifest says {manifest.get('format')!r}); rerun with "
                "--restart to discard it and train from the beginning."
            )
        entries = manifest.get("backups")
        reasons = []
        for index, entry in enumerate(entries if isinstance(entries, list) else []):
            reason, state = self._check(entry, source)
            if reason is None:
                reason = _load(model, source / entry["weights"])
            if reason is None:
                reason = self._agrees(model, state)
            if reason is None:
                if index:
                    print(
                        f"backup: the newest backup is unusable ({reasons[0]}); resuming from "
                        f"the previous one, epoch {state.epoch + 1} step {state.step}",
                        flush=True,
                    )
                self.restored = state
                return state
            reasons.append(
                f"{entry.get('weights', '?') if isinstance(entry, dict) else entry!r}: {reason}"
            )
        detail = "; ".join(reasons) or "its manifest is missing, unreadable or lists no backups"
        raise RelunetError(
            f"The backup in {source} cannot be used ({detail}); rerun with --restart to "
            "discard it and train from the beginning."
        )

    def _check(self, entry: Any, folder: Path) -> tuple[str | None, BackupState | None]:
        """Why a manifest entry cannot be resumed from (None if it can), and its position."""
        if not isinstance(entry, dict):
            return "it is not a backup record", None
        weights, epoch, step = entry.get("weights"), entry.get("epoch"), entry.get("step")
        metrics = entry.get("metrics", {})
        if not isinstance(weights, str) or not _WEIGHTS_NAME.match(weights):
            return "its weights file name is not one relunet writes", None
        if not _is_count(epoch) or not _is_count(step):
            return "its epoch and step are not counts", None
        if not isinstance(metrics, dict) or not all(
            isinstance(k, str) and _is_numbers(v) for k, v in metrics.items()
        ):
            return "its metric totals are malformed", None
        steps, epochs = self.steps_per_epoch, self.epochs
        if steps is not None and step >= steps:
            return f"its step {step} lies outside an epoch of {steps} steps", None
        if epochs is not None and (epoch > epochs or (epoch == epochs and step)):
            return f"its epoch {epoch + 1} lies beyond the run's {epochs} epochs", None
        if self.fingerprint and entry.get("fingerprint") != self.fingerprint:
            return "it was written by another training configuration", None
        if not isinstance(entry.get("sha256"), str) or not _SHA256.match(entry["sha256"]):
            return "its sha256 is malformed", None
        path = folder / weights
        if not path.is_file():
            return "its weights file is missing", None
        if sha256_file(path) != entry["sha256"]:
            return "its weights file is truncated or changed (sha256 mismatch)", None
        return None, BackupState(epoch, step, metrics, weights)

    def _agrees(self, model: keras.Model, state: BackupState) -> str | None:
        """Whether the loaded weights are where the entry says: the optimizer's step count
        is the run's (train mode), and the epoch's metric totals fit the model's
        metrics."""
        if self.steps_per_epoch and self.epochs is not None:
            trained = optimizer_steps(model)
            if trained != state.epoch * self.steps_per_epoch + state.step:
                return (
                    f"its weights have taken {trained} optimizer steps, not the "
                    f"{state.epoch * self.steps_per_epoch + state.step} its epoch and step say"
                )
        shapes = {v.path: tuple(v.shape) for m in model.metrics for v in m.variables}
        for path, value in state.metrics.items():
            array = np.asarray(value, dtype=float)
            if path not in shapes or array.shape != shapes[path] or not np.all(np.isfinite(array)):
                return f"its metric totals do not fit the model ({path})"
        return None

    def on_train_begin(self, logs=None):
        if self.steps_per_epoch is None:
            self.steps_per_epoch = self.params.get("steps")
        # Plain `fit` users get Keras's behaviour: resume at the backed-up epoch.
        # relunet.training.train restores before fit() instead, to resume at the exact
        # step.
        if self.restored is None and self.path.is_dir():
            state = self.restore(self.model)
            if state is not None:
                resume_fit_at_epoch(self.model, state.epoch)

    # -- saving -------------------------------------------------------------------
    def on_epoch_begin(self, epoch, logs=None):
        self._epoch, self._steps_at_epoch_begin = epoch, optimizer_steps(self.model)
        self._saved_at = self.position[1]

    def on_train_batch_end(self, batch, logs=None):
        # `batch` is Keras's count of a whole steps_per_execution chunk; the optimizer
        # says how many steps really ran.
        epoch, step = self.position
        if (
            self.save_freq != "epoch"
            and epoch == self._epoch
            and step - self._saved_at >= self.save_freq
            and (self.steps_per_epoch is None or step < self.steps_per_epoch)
        ):  # the epoch's last chunk is backed up at its end, as step 0 of the next
            self._write_backup()

    def on_epoch_end(self, epoch, logs=None):
        steps = self.steps_per_epoch
        if steps is not None and self.epochs is not None:
            trained = optimizer_steps(self.model)
            if trained != (epoch + 1) * steps:  # an epoch is exactly steps_per_epoch steps
                raise RuntimeError(
                    f"epoch {epoch + 1} ended after {trained} optimizer steps "
                    f"in all, not {(epoch + 1) * steps}; not backing it up"
                )
        # The epoch's end is the next one's start: step 0 of epoch + 1, not its last step.
        self._epoch, self._steps_at_epoch_begin = epoch + 1, optimizer_steps(self.model)
        self._write_backup()

    def on_train_end(self, logs=None):
        if self.delete_checkpoint:
            self.delete()

    @property
    def position(self) -> tuple[int, int]:
        """(epoch, steps done in it) of the training state right now, 0-based epoch.

        An epoch's last step counts as the start of the next epoch: a backup never
        records a step at or past the end of its epoch."""
        trained = optimizer_steps(self.model)
        if self.steps_per_epoch and self.epochs is not None:
            return divmod(trained, self.steps_per_epoch)
        return self._epoch, trained - self._steps_at_epoch_begin

    def save_now(self) -> None:
        """Write a backup of the current state at once (on SIGTERM, say)."""
        self._write_backup()

    def delete(self) -> None:
        shutil.rmtree(self.path, ignore_errors=True)

    def _write_backup(self) -> None:
        epoch, step = self.position
        self.path.mkdir(parents=True, exist_ok=True)
        manifest = _read_manifest(self.path)
        previous = [
            e
            for e in manifest.get("backups", [])
            if isinstance(e, dict)
            and isinstance(e.get("weights"), str)
            and _WEIGHTS_NAME.match(e["weights"])
        ]
        number = 1 + max((int(_WEIGHTS_NAME.match(e["weights"])[1]) for e in previous), default=0)
        name = f"weights-{number}.npz"
        tmp = self.path / f"tmp-{name}"
        try:
            _write_variables(self.model, tmp)
            move_into_place(tmp, self.path / name)
            entry = {
                "weights": name,
                "sha256": sha256_file(self.path / name),
                "epoch": epoch,
                "step": step,
                "metrics": _metric_state(self.model) if step else {},
                "fingerprint": self.fingerprint,
                "time": time.time(),
            }
            kept = [entry] + (previous[:1] if self.double_checkpoint else [])
            write_json_atomic(self.path / MANIFEST, {"format": FORMAT, "backups": kept})
        except OSError as error:
            tmp.unlink(missing_ok=True)
            error.filename = error.filename or str(self.path / name)
            raise
        self._saved_at = step
        self.written += 1
        for old in self.path.glob("weights-*"):  # only after the manifest moved on
            if old.name not in {e["weights"] for e in kept}:
                old.unlink(missing_ok=True)


class RestoreEpochMetrics(keras.callbacks.Callback):
    """Put back the running metric values of an epoch that is resumed mid-way.

    `fit` resets the metrics when an epoch begins; for the resumed epoch this puts
    the backed-up totals back, so its history row matches an uninterrupted run's."""

    def __init__(self, state: BackupState):
        super().__init__()
        self.state = state

    def on_epoch_begin(self, epoch, logs=None):
        if epoch == self.state.epoch and self.state.step:
            values = self.state.metrics
            for metric in self.model.metrics:
                for variable in metric.variables:
                    if variable.path in values:
                        variable.assign(np.asarray(values[variable.path], variable.dtype))


def _state_variables(model: keras.Model) -> list:
    """Everything a step changes: the model's variables (weights, batch-norm statistics,
    dropout's seed state) and the optimizer's."""
    if model.optimizer is not None and not model.optimizer.built:
        model.optimizer.build(model.trainable_variables)
    optimizer = model.optimizer.variables if model.optimizer is not None else []
    return [*model.variables, *optimizer]


def _within_model(path: str, model_name: str) -> str:
    """A variable's path as any process that builds the same network names it: without
    its first part (the model's, the optimizer's or a seed generator's name, which count
    up with every model a process builds: relu_net_1, adam_1) and without the model's
    name where the optimizer's slots repeat it
    (adam_1/relu_net_1_dense_0_kernel_momentum)."""
    inner = path.split("/", 1)[-1]
    return inner.removeprefix(f"{model_name}_")


def _write_variables(model: keras.Model, path: Path) -> None:
    variables = _state_variables(model)
    arrays = {f"v{i}": keras.ops.convert_to_numpy(v) for i, v in enumerate(variables)}
    arrays["paths"] = np.array([v.path for v in variables])
    with open(path, "wb") as f:
        np.savez(f, **arrays)


def _load(model: keras.Model, path: Path) -> str | None:
    """Load a backup's variables into `model`; why it cannot be, or None when it was."""
    variables = _state_variables(model)
    try:
        with np.load(path, allow_pickle=False) as stored:
            paths = stored["paths"].tolist()
            written_by = paths[0].split("/", 1)[0] if paths else ""  # its model's name then
            if [_within_model(p, written_by) for p in paths] != [
                _within_model(v.path, model.name) for v in variables
            ]:
                return "it holds the variables of another model"
            values = [stored[f"v{i}"] for i in range(len(variables))]
    except (OSError, ValueError, KeyError, EOFError, zipfile.BadZipFile) as error:
        return f"it cannot be loaded ({type(error).__name__})"
    if any(
        tuple(value.shape) != tuple(v.shape) for value, v in zip(values, variables, strict=True)
    ):
        return "its variables have other shapes"
    for value, variable in zip(values, variables, strict=True):
        variable.assign(value)
    return None


def _read_manifest(folder: Path) -> dict[str, Any]:
    """The manifest as written; {} if it is missing or not JSON."""
    try:
        manifest = json.loads((folder / MANIFEST).read_text())
    except (OSError, ValueError):
        return {}
    return manifest if isinstance(manifest, dict) else {}


def _metric_state(model: keras.Model) -> dict[str, list[float]]:
    return {
        v.path: np.asarray(keras.ops.convert_to_numpy(v)).tolist()
        for m in model.metrics
        for v in m.variables
    }


def _is_count(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and value >= 0


def _is_numbers(value: Any) -> bool:
    """A number, or a (nested) list of numbers: a metric variable's value."""
    if isinstance(value, list):
        return all(_is_numbers(x) for x in value)
    return isinstance(value, (int, float)) and not isinstance(value, bool)
