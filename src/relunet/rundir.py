"""The run directory: what one training run owns on disk, and how a rerun picks it up.

    <run-dir>/config.json    the resolved TrainConfig; a resume must agree with it
    <run-dir>/history.csv    one row per finished epoch (CSVLogger, append)
    <run-dir>/best.keras     best model so far by val_accuracy (ModelCheckpoint)
    <run-dir>/backup/        AtomicBackupAndRestore state, removed once every epoch is trained
    <run-dir>/logs/          TensorBoard
    <run-dir>/metrics.json   written last: test metrics of best.keras

No TensorFlow here: these are plain files.
"""

from __future__ import annotations

import csv
import json
import math
import os
import shutil
import tempfile
from pathlib import Path
from typing import Any

from relunet.config import TrainConfig
from relunet.errors import RelunetError


def read_json(path: Path) -> Any:
    """The JSON in `path`; RelunetError naming the file if it cannot be read or parsed."""
    try:
        return json.loads(Path(path).read_text())
    except (OSError, ValueError) as error:
        raise RelunetError(f"{path} cannot be read ({error}).") from None


def write_json_atomic(path: Path, data: Any) -> None:
    """Write JSON atomically (see write_text_atomic)."""
    write_text_atomic(path, json.dumps(data, indent=2, sort_keys=True) + "\n")


def write_text_atomic(path: Path, text: str) -> None:
    """Write to a temporary file beside `path`, fsync it, rename it into place and fsync
    the folder: a reader, or a restart after a crash, sees the old file or the new."""
    path = Path(path)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f"tmp-{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "w") as f:
            f.write(text)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    fsync_dir(path.parent)


def fsync_dir(path: Path) -> None:
    """Make a rename inside `path` durable."""
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


class RunDir:
    def __init__(self, path: str | os.PathLike):
        self.path = Path(path)
        self.config = self.path / "config.json"
        self.history = self.path / "history.csv"
        self.best = self.path / "best.keras"
        self.backup = self.path / "backup"
        self.logs = self.path / "logs"
        self.metrics = self.path / "metrics.json"

    def claim(self, config: TrainConfig) -> bool:
        """Create the run dir for `config`, or check that an existing one belongs to it.

        Returns True when the directory already held this run (a resume). Refuses a
        directory that holds another configuration or something that is not a run.
        """
        if self.path.exists() and not self.path.is_dir():
            raise RelunetError(f"The run dir {self.path} is a file, not a folder.")
        if self.config.is_file():
            diffs = config.differences(read_json(self.config))
            if diffs:
                raise RelunetError(
                    f"The run dir {self.path} was started with another configuration "
                    f"({'; '.join(diffs)}); rerun with the same flags or pick a new --run-dir."
                )
            return True
        if self.path.is_dir() and any(self.path.iterdir()):
            raise RelunetError(
                f"The run dir {self.path} already holds files and no config.json; "
                "it is not a relunet run, so pick a new --run-dir."
            )
        self.path.mkdir(parents=True, exist_ok=True)
        write_json_atomic(self.config, config.to_dict())
        return False

    def discard_progress(self) -> None:
        """Remove what training wrote (not config.json), to train again from the start."""
        for path in (self.backup, self.logs):
            shutil.rmtree(path, ignore_errors=True)
        for path in (self.history, self.best, self.metrics):
            path.unlink(missing_ok=True)
        print(f"run: --restart: discarded the progress in {self.path}", flush=True)

    def history_rows(self) -> list[dict[str, str]]:
        if not self.history.is_file():
            return []
        with open(self.history, newline="") as f:
            return list(csv.DictReader(f))

    def keep_history_before(self, epoch: int) -> list[dict[str, str]]:
        """Drop history rows of epochs >= `epoch`: they are about to be trained again."""
        rows = self.history_rows()
        kept = [row for row in rows if int(row["epoch"]) < epoch]
        if len(kept) != len(rows):
            fd, tmp = tempfile.mkstemp(dir=self.path, prefix=".history.", suffix=".tmp")
            with os.fdopen(fd, "w", newline="") as f:
                writer = csv.DictWriter(f, fieldnames=list(rows[0].keys()))
                writer.writeheader()
                writer.writerows(kept)
            os.replace(tmp, self.history)
        return kept

    @staticmethod
    def best_value(rows: list[dict[str, str]], key: str = "val_accuracy") -> float | None:
        """The highest value of `key` in the history; None if it was never measured
        (CSVLogger writes NA for the val_ columns of a run without validation)."""
        values = [_number(row.get(key)) for row in rows]
        values = [v for v in values if v is not None and not math.isnan(v)]
        return max(values) if values else None


def _number(text: str | None) -> float | None:
    try:
        return float(text)
    except (TypeError, ValueError):
        return None
