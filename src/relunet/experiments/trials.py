"""A search's records, read straight from the files keras-tuner and relunet write.

Plain JSON and CSV, no TensorFlow: `relunet tune --summary` answers at once.

    <directory>/<project>/relunet_search.json     the TuneConfig the search was started with
    <directory>/<project>/trial_<id>/trial.json   keras-tuner's record of the trial
    <directory>/<project>/trial_<id>/relunet_trial.json   seconds and epochs it ran
    <directory>/<project>/summary.csv, summary.json       the table below
    <directory>/<project>/relunet_final.json      the retrained best model's result
    <directory>/.<project>.lock                   held by the process that runs the search

keras-tuner and relunet write every one of these atomically while `relunet tune` runs
(a temporary file renamed into place), so a reader sees a whole record or the previous
one; `relunet tune --summary` can read a search that is running.
"""

from __future__ import annotations

import csv
import io
import math
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from relunet.base.errors import RelunetError
from relunet.base.files import is_locked, read_json, write_json_atomic, write_text_atomic
from relunet.base.table import format_table
from relunet.config import SEARCHABLE, TuneConfig

SEARCH_CONFIG = "relunet_search.json"
TRIAL_TIMING = "relunet_trial.json"
FINAL = "relunet_final.json"
OBJECTIVE = "val_accuracy"  # what picks the best trial unless the search says otherwise
ENDED = ("COMPLETED", "FAILED", "INVALID", "STOPPED")  # keras-tuner's statuses of a done trial


def project_dir(config: TuneConfig) -> Path:
    return Path(config.directory) / config.project_name


def lock_path(project_dir: str | Path) -> Path:
    """The search's lock, beside the project (which keras-tuner deletes on --overwrite)."""
    project_dir = Path(project_dir)
    return project_dir.with_name(f".{project_dir.name}.lock")


def running_search(project_dir: str | Path) -> str | None:
    """Who runs a search in `project_dir` now ("process 123 on host since ..."), or None."""
    lock = lock_path(project_dir)
    if not is_locked(lock):
        return None
    try:
        return lock.read_text().strip() or "another process"
    except OSError:
        return "another process"


def check_search_space(config: TuneConfig) -> None:
    """Refuse to continue a search whose space differs, unless told to start over."""
    saved_path = project_dir(config) / SEARCH_CONFIG
    if config.overwrite or not saved_path.is_file():
        return
    diffs = config.space_differences(read_json(saved_path, expect=dict))
    if diffs:
        raise RelunetError(
            f"The search in {project_dir(config)} was started with another search space "
            f"({'; '.join(diffs)}); rerun with the same flags, or pass --overwrite to start over."
        )


def search_objective(project_dir: str | Path) -> str:
    """The objective a search picks its best trial by (its --objective)."""
    saved = Path(project_dir) / SEARCH_CONFIG
    if not saved.is_file():
        return OBJECTIVE
    return str(read_json(saved, expect=dict).get("objective", OBJECTIVE))


@dataclass
class TrialRow:
    trial_id: str
    status: str
    hyperparameters: dict[str, Any]
    val_accuracy: float | None  # at the best epoch (mean over executions)
    best_epoch: int | None  # 1-based epoch of the best objective
    epochs: int | None  # epochs the trial ran (EarlyStopping may stop it early)
    seconds: float | None
    message: str | None = None  # why a trial failed
    tuner_id: str | None = None  # the process that ran it (a distributed search's worker)
    memory_mb: float | None = None  # that process's resident memory when the trial ended
    objective: str = OBJECTIVE  # the search's objective (higher is better)
    score: float | None = None  # its best value over the trial's epochs

    @property
    def scored(self) -> str:
        """The objective and its value, as the progress line and the report print it."""
        return f"{self.objective} {self.score:.4f}"

    @property
    def number(self) -> int:
        """The trial's number as keras-tuner prints it ("Trial 3 Complete"): id + 1."""
        return int(self.trial_id) + 1 if self.trial_id.isdigit() else 0


def read_trials(project_dir: str | Path, skipped: list[str] | None = None) -> list[TrialRow]:
    """All trials of a search, best objective first, unscored trials last.

    An unreadable record raises RelunetError; with a `skipped` list (a search that is
    running, whose records other processes write) it is left out and named there."""
    rows, objective = [], search_objective(project_dir)
    for path in Path(project_dir).glob("trial_*/trial.json"):
        try:
            rows.append(_read_trial(path.parent, objective))
        except RelunetError as error:
            if skipped is None:
                raise
            skipped.append(f"{path.parent.name} ({error})")
    return sorted(rows, key=lambda r: (r.score is None, -(r.score or 0), r.trial_id))


def summarize(project_dir: str | Path, from_outside: bool = False) -> list[TrialRow]:
    """Print the table of a search's trials and write it as summary.csv and summary.json.

    `from_outside` (`relunet tune --summary`): while a search runs in the project (its
    lock is held), the table is of the records so far: trials still running show as
    RUNNING, and a record that cannot be read is named and left out instead of ending
    the command."""
    running, skipped = running_search(project_dir) if from_outside else None, []
    rows = read_trials(project_dir, skipped if running else None)
    if running:
        ended = sum(r.status in ENDED for r in rows)
        print(
            f"tune: a search is running in {project_dir} ({running}); {ended} trial(s) ended "
            f"so far, {len(rows) - ended} running",
            flush=True,
        )
    if not rows:
        raise RelunetError(f"No trials found in {project_dir}.")
    csv_path, json_path = write_summary(project_dir, rows)
    print(trials_table(rows))
    for name in skipped:
        print(f"tune: left out {name}", flush=True)
    print(f"tune: {len(rows)} trials; table written to {csv_path} and {json_path}", flush=True)
    return rows


def print_progress(project_dir: Path, trial_id: str, max_trials: int, tuner: str) -> None:
    """Print the progress line of a trial that just ended; none if its record is unreadable."""
    try:
        ended = next(r for r in read_trials(project_dir, skipped=[]) if r.trial_id == trial_id)
    except (RelunetError, StopIteration):
        return
    print(progress_line(project_dir, ended, max_trials, tuner == "hyperband"), flush=True)


def progress_line(project_dir: str | Path, ended: TrialRow, max_trials: int, cap: bool) -> str:
    """One line for a trial that just ended: how it did, the trials done of `max_trials`
    (`cap`: at most that many, as for hyperband), the best so far, the mean seconds a
    trial over the ended ones, and the time left at that pace (divided among the
    processes that have run trials, for a distributed search)."""
    rows = read_trials(project_dir, skipped=[])
    done = [r for r in rows if r.status in ENDED]
    best = next((r for r in rows if r.status == "COMPLETED" and r.score is not None), None)
    timed = [r.seconds for r in done if r.seconds is not None]
    per_trial = sum(timed) / len(timed) if timed else None
    processes = max(1, len({r.tuner_id for r in done if r.tuner_id}))
    left = max(0, max_trials - len(done))
    score = "" if ended.score is None else f", {ended.scored}"
    took = "" if ended.seconds is None else f" in {ended.seconds:.1f} s"
    parts = [
        f"tune: trial {ended.number} {ended.status}{took}{score}",
        f"{len(done)} of {'at most ' if cap else ''}{max_trials} trials done",
    ]
    if best is not None:
        parts.append(f"best trial {best.number} ({best.scored})")
    if per_trial is not None:
        eta = "" if not left else f", about {_duration(left * per_trial / processes)} left"
        parts.append(f"{per_trial:.1f} s a trial{eta}")
    if ended.memory_mb is not None:
        parts.append(f"memory {ended.memory_mb:.0f} MB")
    return "; ".join(parts)


def _duration(seconds: float) -> str:
    if seconds < 90:
        return f"{seconds:.0f} s"
    if seconds < 90 * 60:
        return f"{seconds / 60:.0f} min"
    return f"{seconds / 3600:.1f} h"


def write_summary(project_dir: str | Path, rows: list[TrialRow]) -> tuple[Path, Path]:
    """summary.csv (one column per hyperparameter) and summary.json beside the trials."""
    project_dir = Path(project_dir)
    names = hyperparameter_names(rows)
    csv_path, json_path = project_dir / "summary.csv", project_dir / "summary.json"
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    objectives = _objective_columns(rows)
    header = ["trial", "trial_id", "status", *names, *objectives, "val_accuracy", "best_epoch"]
    writer.writerow([*header, "epochs", "seconds"])
    for r in rows:
        values = (r.hyperparameters.get(n, "") for n in names)
        scores = (*(r.score for _ in objectives), r.val_accuracy, r.best_epoch, r.epochs, r.seconds)
        writer.writerow([r.number, r.trial_id, r.status, *values, *map(_blank, scores)])
    write_text_atomic(csv_path, out.getvalue())
    # Each row names its objective and holds its value under that name too.
    write_json_atomic(
        json_path, [{"trial": r.number, **asdict(r), r.objective: r.score} for r in rows]
    )
    return csv_path, json_path


def trials_table(rows: list[TrialRow]) -> str:
    """The trials as an aligned text table, best first, and why the failed ones failed."""
    names, objectives = hyperparameter_names(rows), _objective_columns(rows)
    header = ["trial", "status", *names, *objectives, "val_accuracy", "epochs", "seconds"]
    lines = [
        [
            str(r.number),
            r.status,
            *(_format_value(r.hyperparameters.get(n)) for n in names),
            *("" if r.score is None else f"{r.score:.4f}" for _ in objectives),
            "" if r.val_accuracy is None else f"{r.val_accuracy:.4f}",
            "" if r.epochs is None else str(r.epochs),
            "" if r.seconds is None else f"{r.seconds:.1f}",
        ]
        for r in rows
    ]
    failures = [f"trial {r.number} failed: {r.message}" for r in rows if r.status == "FAILED"]
    return "\n".join([format_table(header, lines), *failures])


def hyperparameter_names(rows: list[TrialRow]) -> list[str]:
    """The searched hyperparameters, in a stable order; keras-tuner's own (tuner/...) left out."""
    names = {n for r in rows for n in r.hyperparameters if not n.startswith("tuner/")}
    order = list(SEARCHABLE)
    return [n for n in order if n in names] + sorted(names - set(order))


def _objective_columns(rows: list[TrialRow]) -> list[str]:
    """The objective's column, before val_accuracy, when it is not val_accuracy."""
    return sorted({r.objective for r in rows} - {OBJECTIVE})


def _read_trial(trial_dir: Path, objective: str) -> TrialRow:
    record = read_json(trial_dir / "trial.json", expect=dict)
    try:
        return _trial_row(trial_dir, record, objective)
    except (AttributeError, TypeError, ValueError, IndexError):
        raise RelunetError(
            f"{trial_dir / 'trial.json'} is not a trial record keras-tuner "
            "wrote; remove that trial's folder or start over with --overwrite."
        ) from None


def _best_observation(record: dict[str, Any], metric: str) -> tuple[float, int] | None:
    """The highest value keras-tuner recorded of `metric`, and its (0-based) epoch."""
    observations = (
        record.get("metrics", {}).get("metrics", {}).get(metric, {}).get("observations", [])
    )
    best = None
    for observation in observations:
        value = observation.get("value", [None])[0]
        if value is not None and not math.isnan(value) and (best is None or value > best[0]):
            best = (float(value), int(observation.get("step", 0)))
    return best


def _trial_row(trial_dir: Path, record: dict[str, Any], objective: str) -> TrialRow:
    values = record.get("hyperparameters", {}).get("values", {})
    best, accuracy = _best_observation(record, objective), _best_observation(record, OBJECTIVE)
    timing = {}
    if (trial_dir / TRIAL_TIMING).is_file():
        timing = read_json(trial_dir / TRIAL_TIMING, expect=dict)
    else:  # a running trial: the epochs its fits have finished so far
        finished = [read_json(p, expect=list) for p in trial_dir.glob("execution*/epochs.json")]
        timing = {"epochs": max(map(len, finished))} if finished else {}
    return TrialRow(
        trial_id=str(record.get("trial_id", trial_dir.name.removeprefix("trial_"))),
        status=str(record.get("status", "UNKNOWN")),
        hyperparameters=values,
        val_accuracy=None if accuracy is None else accuracy[0],
        best_epoch=None if best is None else best[1] + 1,
        epochs=timing.get("epochs"),
        seconds=timing.get("seconds"),
        message=timing.get("failure") or _last_line(record.get("message")),
        tuner_id=timing.get("tuner_id"),
        memory_mb=timing.get("memory_mb"),
        objective=objective,
        score=None if best is None else best[0],
    )


def _last_line(message: str | None) -> str | None:
    return message.strip().splitlines()[-1] if message and message.strip() else None


def _format_value(value: Any) -> str:
    if isinstance(value, float):
        return f"{value:.2e}"
    return "" if value is None else str(value)


def _blank(value: Any) -> Any:
    return "" if value is None else value
