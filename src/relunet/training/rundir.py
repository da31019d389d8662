"""The run directory: what one training run owns on disk, and how a rerun picks it up.

    <run-dir>/config.json    the resolved TrainConfig; a resume must agree with it
    <run-dir>/history.csv    one row per finished epoch (HistoryLog, rewritten atomically)
    <run-dir>/best.keras     best model so far by val_accuracy (ModelCheckpoint)
    <run-dir>/backup/        AtomicBackupAndRestore state, removed once every epoch is trained
    <run-dir>/logs/          TensorBoard
    <run-dir>/metrics.json   written last: test metrics of best.keras
    <run-dir>/.lock          held (flock) by the process training it, which it names

No TensorFlow here: these are plain files.
"""

from __future__ import annotations

import contextlib
import csv
import dataclasses
import io
import math
import os
import shutil
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from relunet.base.errors import RelunetError
from relunet.base.files import (
    hold_lock,
    is_locked,
    read_json,
    remove_temporaries,
    write_json_atomic,
    write_text_atomic,
)
from relunet.base.paths import check_output_dir
from relunet.config import TrainConfig


def read_history(path: Path) -> list[dict[str, str]]:
    """The rows of a history.csv, epoch 0 first; RelunetError if it is not one relunet wrote."""
    path = Path(path)
    if not path.is_file():
        return []
    try:
        with open(path, newline="") as f:
            reader = csv.DictReader(f)
            rows = list(reader)
            fields = reader.fieldnames or []
    except (OSError, UnicodeDecodeError, csv.Error) as error:
        raise RelunetError(f"{path} cannot be read ({error}).") from None
    epochs = [row.get("epoch") for row in rows]
    if (
        not set(fields) >= HISTORY_COLUMNS
        or epochs != [str(i) for i in range(len(rows))]
        or any(None in row or None in row.values() for row in rows)
        or any(_number(v) is None and v != "NA" for row in rows for v in row.values())
    ):
        raise RelunetError(
            f"{path} is not a history relunet wrote (one row of numbers per epoch, numbered "
            "from 0); rerun with --restart to discard the run's progress."
        )
    return rows


HISTORY_COLUMNS = {"epoch", "loss", "accuracy", "epoch_seconds"}  # what every epoch logs


def append_history(path: Path, row: dict[str, Any]) -> None:
    """Add one epoch's row to a history.csv (in the columns of its first row; NA where
    the row has no value), rewriting the file atomically: a kill or a full disk never
    leaves half a row."""
    rows = read_history(path)
    _write_history(path, [*rows, row], list(rows[0]) if rows else list(row))


def _write_history(path: Path, rows: list[dict[str, Any]], columns: list[str]) -> None:
    """The one writer of history.csv."""
    out = io.StringIO()
    writer = csv.DictWriter(
        out, fieldnames=columns, restval="NA", extrasaction="ignore", lineterminator="\n"
    )
    writer.writeheader()
    writer.writerows(rows)
    write_text_atomic(path, out.getvalue())


def with_run_dir(config: TrainConfig, runs: Path = Path("runs")) -> TrainConfig:
    """`config` with its run dir set. Without --run-dir that is the newest unfinished run
    under runs/ that this configuration started and no process holds, so that rerunning
    the same command resumes it; else (and always with --restart) a new
    runs/<timestamp>."""
    if config.run_dir:
        return config
    unfinished = [] if config.restart else [r for r in _runs_in(runs) if r.resumable_by(config)]
    if unfinished:
        newest = max(unfinished, key=lambda r: r.config.stat().st_mtime)
        return dataclasses.replace(config, run_dir=str(newest.path))
    return dataclasses.replace(config, run_dir=str(runs / time.strftime("%Y%m%d-%H%M%S")))


def _runs_in(runs: Path) -> list[RunDir]:
    try:
        return [RunDir(p.parent) for p in runs.glob("*/config.json") if p.is_file()]
    except OSError:
        return []


class RunDir:
    def __init__(self, path: str | os.PathLike):
        self.path = Path(path)
        self.config = self.path / "config.json"
        self.history = self.path / "history.csv"
        self.best = self.path / "best.keras"
        self.backup = self.path / "backup"
        self.finder = self.path / "finder.keras"  # where a row's digits are (--finder-steps)
        self.finder_backup = self.path / "finder_backup"
        self.logs = self.path / "logs"
        self.metrics = self.path / "metrics.json"

    def check(self, config: TrainConfig) -> None:
        """Everything about the run dir that training `config` in it would refuse, read
        only: the command line asks this before it imports TensorFlow, so a wrong run dir
        is answered at once, and `claim` asks it again before it writes."""
        if self.path.exists() and not self.path.is_dir():
            raise RelunetError(f"The run dir {self.path} is a file, not a folder.")
        if not self.path.is_dir():
            return
        if self.config.is_file():
            self._check_config(config)
        elif any(p.name != ".lock" for p in self.path.iterdir()):
            raise self._not_a_run()
        folders = (
            (self.backup, "backup folder"),
            (self.finder_backup, "finder backup folder"),
            (self.logs, "logs folder"),
        )
        for folder, what in folders:
            if folder.exists() or folder.is_symlink():
                check_output_dir(folder, what)
        if not config.restart:
            self.history_rows()

    def _check_config(self, config: TrainConfig) -> None:
        diffs = config.differences(read_json(self.config, expect=dict))
        if diffs:
            raise RelunetError(
                f"The run dir {self.path} was started with another configuration "
                f"({'; '.join(diffs)}); rerun with the same flags or pick a new --run-dir."
            )

    def _not_a_run(self) -> RelunetError:
        return RelunetError(
            f"The run dir {self.path} already holds files and no config.json; "
            "it is not a relunet run, so pick a new --run-dir."
        )

    def claim(self, config: TrainConfig) -> bool:
        """Create the run dir for `config`, or check that an existing one belongs to it.

        Returns True when the directory already held this run (a resume). Refuses what
        `check` refuses: a directory that holds another configuration or something that
        is not a run.
        """
        self.check(config)
        if self.config.is_file():
            return True
        self.path.mkdir(parents=True, exist_ok=True)
        write_json_atomic(self.config, config.to_dict())
        return False

    @contextlib.contextmanager
    def opened(self, config: TrainConfig, writer: bool = True) -> Iterator[None]:
        """Claim the run dir for `config` and, unless it has finished, hold its lock while
        the block runs; with `restart`, discard its progress first. Only the writer (the
        chief of a multi-worker job) claims, locks and says what it found."""
        if not writer:
            yield
            return
        first_new = next(
            (p for p in (*reversed(self.path.parents), self.path) if not p.exists()), None
        )  # what claim() creates, if anything
        resumed = self.claim(config)
        try:
            with contextlib.ExitStack() as held:
                if config.restart or not self.finished():  # it will be written to
                    held.enter_context(self.locked())
                    remove_temporaries(self.path)
                if config.restart:
                    self.discard_progress()
                self._say_what_it_is(resumed and not config.restart)
                yield
        except RelunetError:  # bad input leaves nothing behind
            if not resumed and self._holds_only_bookkeeping():
                if first_new is not None:
                    shutil.rmtree(first_new, ignore_errors=True)
                else:  # a folder that was there, empty, before
                    for made in self.path.iterdir():
                        shutil.rmtree(made) if made.is_dir() else made.unlink()
            raise

    def _say_what_it_is(self, resumed: bool) -> None:
        if self.finished():
            print(f"run: {self.path} has already finished; its metrics are in {self.metrics}")
        else:
            print(f"run: {'continuing' if resumed else 'starting'} {self.path}", flush=True)

    def _holds_only_bookkeeping(self) -> bool:
        """Whether the run dir holds nothing but its config, its lock and empty folders."""
        return all(
            p.name in ("config.json", ".lock") or (p.is_dir() and not any(p.rglob("*.*")))
            for p in self.path.iterdir()
        )

    def resumable_by(self, config: TrainConfig) -> bool:
        """Whether `config` would continue this run: unfinished, not held by a process,
        and started with the same configuration."""
        return not self.finished() and not self.is_held() and self.started_with(config)

    def started_with(self, config: TrainConfig) -> bool:
        """Whether this run dir holds a run of `config`'s configuration."""
        try:
            return not config.differences(read_json(self.config, expect=dict))
        except RelunetError:
            return False

    def is_held(self) -> bool:
        """Whether a process holds the run dir's lock."""
        return is_locked(self.path / ".lock")

    def finished(self) -> bool:
        """Whether the run wrote its metrics: it is trained and tested."""
        return self.metrics.is_file()

    def read_metrics(self) -> dict[str, Any]:
        return read_json(self.metrics, expect=dict)

    def best_value_before(self, epoch: int, key: str = "val_accuracy") -> float | None:
        """The best `key` of the epochs before `epoch` (ModelCheckpoint's starting point)."""
        return self.best_value(
            [row for row in self.history_rows() if int(row["epoch"]) < epoch], key
        )

    def locked(self) -> contextlib.AbstractContextManager[None]:
        """Hold the run dir's lock while training it (see hold_lock)."""
        return hold_lock(self.path / ".lock", f"run dir {self.path}")

    def discard_progress(self) -> None:
        """Remove what training wrote (not config.json), to train again from the start."""
        for path in (self.backup, self.finder_backup, self.logs):
            shutil.rmtree(path, ignore_errors=True)
        for path in (self.history, self.best, self.finder, self.metrics):
            path.unlink(missing_ok=True)
        print(f"run: --restart: discarded the progress in {self.path}", flush=True)

    def history_rows(self) -> list[dict[str, str]]:
        return read_history(self.history)

    def keep_history_before(self, epoch: int) -> list[dict[str, str]]:
        """Drop history rows of epochs >= `epoch`: they are about to be trained again."""
        rows = self.history_rows()
        kept = [row for row in rows if int(row["epoch"]) < epoch]
        if len(kept) != len(rows):
            if kept:
                _write_history(self.history, kept, list(rows[0]))
            else:
                self.history.unlink()
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
