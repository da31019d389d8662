"""Crash-safe backups for `fit`, and exact resumption from the middle of an epoch.

Keras's `BackupAndRestore` writes `latest.weights.h5` and then its metadata in place,
so a kill in between can leave a truncated file, or weights that disagree with the
recorded epoch; and it restarts an interrupted epoch from its first batch.
`AtomicBackupAndRestore` keeps the same constructor and folder, but:

- each backup's weights (model and optimizer) go to a temporary file that is fsynced
  and renamed into place under a new name; only then is `manifest.json` replaced
  (same way) to name them, with their sha256, the epoch, the step within it and the
  running values of the epoch's metrics. A reader sees the old backup or the new one,
  never half of one; the previous backup is kept as a fallback;
- restoring checks the sha256 and falls back to the previous backup, saying so; if
  no backup can be used the run is refused rather than silently started afresh;
- it records the step, so `relunet.train` continues from the next unseen batch.

The folder holds `manifest.json` and at most two `weights-<n>.weights.h5`.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import keras
import numpy as np

from relunet.errors import RelunetError
from relunet.rundir import fsync_dir, write_json_atomic

MANIFEST = "manifest.json"
# Fault-injection hook for the test suite: stall this many seconds in the middle of
# the Nth backup write (weights written, not yet published), so a test can kill it there.
STALL_ENV = "RELUNET_FAULT_STALL_BACKUP"  # "N:SECONDS"


@dataclass
class BackupState:
    """Where a backup lets training continue: `step` batches into `epoch` (0-based)."""

    epoch: int
    step: int
    metrics: dict[str, list[float]] = field(default_factory=dict)  # metric variable -> value
    weights: str = ""


class AtomicBackupAndRestore(keras.callbacks.BackupAndRestore):
    """`keras.callbacks.BackupAndRestore` with atomic writes and step-exact state."""

    def __init__(self, backup_dir, save_freq="epoch", double_checkpoint=True,
                 delete_checkpoint=True, fingerprint: str | None = None):
        super().__init__(backup_dir, save_freq=save_freq, double_checkpoint=double_checkpoint,
                         delete_checkpoint=delete_checkpoint)
        self.path = Path(backup_dir)
        self.fingerprint = fingerprint  # of the training configuration that wrote it
        self.restored: BackupState | None = None
        self.step_offset = 0  # batches of the current epoch done before this fit() began
        self._epoch, self._steps_done, self._saved_at, self._writes = 0, 0, 0, 0

    # -- restoring ----------------------------------------------------------------
    def restore(self, model: keras.Model, source: str | os.PathLike | None = None
                ) -> BackupState | None:
        """Load the newest usable backup into `model` (weights and optimizer).

        `source` is another backup folder to read (a worker reads the chief's); by
        default this callback's own. Returns None when there is no backup. Raises
        RelunetError when there is one and none of it can be used, so that nothing is
        trained over it by accident.
        """
        source = Path(source) if source is not None else self.path
        if source == self.path:
            self._remove_temporaries()
        if not source.is_dir() or not any(source.iterdir()):
            return None
        entries = self._read_manifest(source)
        reasons = []
        for index, entry in enumerate(entries):
            reason = self._unusable(entry, source)
            if reason is None:
                try:
                    _build_optimizer(model)
                    model.load_weights(source / entry["weights"])
                except (OSError, ValueError, KeyError) as error:
                    reason = f"it cannot be loaded ({type(error).__name__})"
            if reason is None:
                if index:
                    print(f"backup: the newest backup is unusable ({reasons[0]}); resuming from "
                          f"the previous one, epoch {entry['epoch'] + 1} step {entry['step']}",
                          flush=True)
                self.restored = BackupState(entry["epoch"], entry["step"],
                                            entry.get("metrics", {}), entry["weights"])
                self._epoch, self._steps_done = entry["epoch"], entry["step"]
                return self.restored
            reasons.append(f"{entry.get('weights', '?')}: {reason}")
        detail = "; ".join(reasons) or "its manifest is missing or unreadable"
        raise RelunetError(
            f"The backup in {source} cannot be used ({detail}); rerun with --restart to "
            "discard it and train from the beginning."
        )

    def on_train_begin(self, logs=None):
        # Plain `fit` users get Keras's behaviour: resume at the backed-up epoch.
        # relunet.train restores before fit() instead, to resume at the exact step.
        if self.restored is None and self.path.is_dir():
            state = self.restore(self.model)
            if state is not None:
                self.model._initial_epoch = state.epoch

    # -- saving -------------------------------------------------------------------
    def on_epoch_begin(self, epoch, logs=None):
        if epoch != self._epoch:
            self.step_offset = 0
        self._epoch, self._saved_at = epoch, self.step_offset

    def on_train_batch_end(self, batch, logs=None):
        # `batch` is the last step of the call (several with steps_per_execution).
        self._steps_done = self.step_offset + batch + 1
        if self.save_freq != "epoch" and self._steps_done - self._saved_at >= self.save_freq:
            self._save_model()

    def on_epoch_end(self, epoch, logs=None):
        self._epoch, self._steps_done, self.step_offset = epoch + 1, 0, 0
        self._save_model()

    def on_train_end(self, logs=None):
        if self.delete_checkpoint:
            self.delete()

    @property
    def position(self) -> tuple[int, int]:
        """(epoch, steps done in it) of the training state right now, 0-based epoch."""
        return self._epoch, self._steps_done

    def save_now(self) -> None:
        """Write a backup of the current state at once (on SIGTERM, say)."""
        self._save_model()

    def delete(self) -> None:
        shutil.rmtree(self.path, ignore_errors=True)

    def _save_model(self):
        self.path.mkdir(parents=True, exist_ok=True)
        previous = self._read_manifest()
        number = 1 + max((_number_of(e["weights"]) for e in previous), default=0)
        name = f"weights-{number}.weights.h5"
        tmp = self.path / f"tmp-{name}"
        self.model.save_weights(tmp, overwrite=True)
        _fsync_file(tmp)
        self._writes += 1
        _maybe_stall(self._writes)
        os.replace(tmp, self.path / name)
        fsync_dir(self.path)
        entry = {
            "weights": name,
            "sha256": _sha256(self.path / name),
            "epoch": self._epoch,
            "step": self._steps_done,
            "metrics": _metric_state(self.model) if self._steps_done else {},
            "fingerprint": self.fingerprint,
            "time": time.time(),
        }
        self._saved_at = self._steps_done
        kept = [entry] + (previous[:1] if self.double_checkpoint else [])
        write_json_atomic(self.path / MANIFEST, {"format": 1, "backups": kept})
        for old in self.path.glob("weights-*.weights.h5"):  # only after the manifest moved on
            if old.name not in {e["weights"] for e in kept}:
                old.unlink(missing_ok=True)

    # -- helpers ------------------------------------------------------------------
    def _read_manifest(self, folder: Path | None = None) -> list[dict[str, Any]]:
        """The manifest's backups, newest first; none if it is missing or unreadable."""
        try:
            return list(json.loads(((folder or self.path) / MANIFEST).read_text())["backups"])
        except (OSError, ValueError, KeyError, TypeError):
            return []

    def _unusable(self, entry: dict[str, Any], folder: Path) -> str | None:
        if self.fingerprint and entry.get("fingerprint") != self.fingerprint:
            return "it was written by another training configuration"
        weights = folder / str(entry.get("weights"))
        if not weights.is_file():
            return "its weights file is missing"
        if _sha256(weights) != entry.get("sha256"):
            return "its weights file is truncated or changed (sha256 mismatch)"
        return None

    def _remove_temporaries(self) -> None:
        for tmp in self.path.glob("tmp-*"):
            tmp.unlink(missing_ok=True)


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


def _metric_state(model: keras.Model) -> dict[str, list[float]]:
    return {v.path: np.asarray(v).tolist() for m in model.metrics for v in m.variables}


def _build_optimizer(model: keras.Model) -> None:
    if model.optimizer is not None and not model.optimizer.built:
        model.optimizer.build(model.trainable_variables)


def _number_of(name: str) -> int:
    try:
        return int(name.split("-", 1)[1].split(".", 1)[0])
    except (IndexError, ValueError):
        return 0


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def _fsync_file(path: Path) -> None:
    with open(path, "rb") as f:
        os.fsync(f.fileno())


def _maybe_stall(write: int) -> None:
    setting = os.environ.get(STALL_ENV)
    if setting:
        at, seconds = setting.split(":")
        if write == int(at):
            time.sleep(float(seconds))
