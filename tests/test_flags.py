"""Every flag of every command does something: run with it, the command does something
else than without it (what it writes, what it prints, how its step ran), or it is
refused with exit status 2. A flag that changes nothing is a bug.

The cases run the real command line (in this process, or as a subprocess where a flag
can only act on a fresh TensorFlow) on a tiny IDX folder of random digits, so they need
no MNIST and take a second or two each. `test_every_flag_has_a_case` walks the parser:
a new flag without a case here fails it.
"""

from __future__ import annotations

import contextlib
import dataclasses
import io
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import threading
import time
import urllib.request
import zipfile
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pytest
from helpers import free_ports, write_idx_folder

from relunet import cli

DATA = ["--data-dir", "idx", "--tfds-dir", "tfds"]
SMALL = [*DATA, "--train-split", "train[:300]", "--test-split", "test", "--epochs", "1"]
SMALL += ["--batch-size", "64"]
VAL = ["--val-split", "train[300:]"]
# train's base compiles without XLA and validates nothing: the cheapest run (each case
# below then turns one of them on).
BASE = {
    "train": [
        "train",
        *SMALL,
        "--val-split",
        "none",
        "--jit-compile",
        "off",
        "--run-dir",
        "run",
        "--verbose",
        "2",
    ],
    "tune": [
        "tune",
        *SMALL,
        *VAL,
        "--full-train-split",
        "train[:300]",
        "--max-trials",
        "1",
        "--directory",
        "tuning",
        "--verbose",
        "0",
    ],
    "compare": ["compare", *SMALL, *VAL, "--activations", "relu", "--depths", "1", "--out", "cmp"],
    "export": ["export", "--model", "model.keras", "--out", "saved"],
    "predict": ["predict", "--model", "model.keras", "digit.png"],
    "evaluate": ["evaluate", "--model", "model.keras", *DATA, "--split", "test"],
}


@dataclass
class Case:
    """A flag's case: `args` replace or extend the command's base arguments. Expected:
    an outcome other than the reference's (the base, or base + `reference`), or with
    `refused`, exit status 2 naming it. `subprocess` for flags that act only on a fresh
    TensorFlow; `then` for flags that act on what an earlier run left."""

    args: list[str]
    reference: list[str] = field(default_factory=list)
    refused: str | None = None
    subprocess: bool = False
    then: bool = False


def case(*args, **kwargs) -> Case:
    return Case(list(args), **kwargs)


# The distortions' strengths, each with a value away from its default (train and tune).
STRENGTHS = {
    "rotation": "40",
    "scale": "0.3",
    "aspect": "0.3",
    "shear": "0.4",
    "translate": "4",
    "elastic_alpha": "10",
    "elastic_sigma": "6",
    "thickness": "1",
}
TRAIN = {
    "dataset": case("--dataset", "fashion_mnist"),
    "data_dir": case("--data-dir", "idx2"),
    "tfds_dir": case("--tfds-dir", "tfds2"),
    "train_split": case("--train-split", "train[:200]"),
    "val_split": case("--val-split", "train[300:]"),
    "test_split": case("--test-split", "test[:50]"),
    "width": case("--width", "32"),
    "init": case("--init", "he_normal"),
    "dropout": case("--dropout", "0.5"),
    "batch_norm": case("--batch-norm"),
    "depth": case("--depth", "1"),
    "activation": case("--activation", "sigmoid"),
    "deskew": case("--deskew"),
    "learning_rate": case("--lr", "0.01"),
    "batch_size": case("--batch-size", "32"),
    "epochs": case("--epochs", "2"),
    "seed": case("--seed", "1"),
    "lr_schedule": case("--lr-schedule", "cosine"),
    "label_smoothing": case("--label-smoothing", "0.1"),
    "deterministic": case("--deterministic", subprocess=True),
    "jit_compile": case("--jit-compile", "on"),
    "steps_per_execution": case("--steps-per-execution", "2"),
    "threads": case("--threads", "1", subprocess=True),
    "run_eagerly": case("--run-eagerly"),
    "run_dir": case("--run-dir", "run2"),
    "backup_every": case("--backup-every", "2"),
    "restart": case("--restart", then=True),
    "grad_norms": case("--grad-norms"),
    "strategy": case("--strategy", "mirrored"),
    "cpu_replicas": case("--cpu-replicas", "2", refused="cpu_replicas needs strategy"),
    "augment": case("--augment", "0.5"),
    **{  # each strength, with --augment on (without it, one is refused)
        name: case(f"--{name.replace('_', '-')}", value, reference=["--augment", "1"])
        for name, value in STRENGTHS.items()
    },
    "non_digits": case("--non-digits", "0.5"),
    "finder_steps": case("--finder-steps", "20"),
    "verbose": case("--verbose", "0"),
    "preset": case("--preset", "fast98"),
}
TUNE = {
    "dataset": case("--dataset", "fashion_mnist"),
    "data_dir": case("--data-dir", "idx2"),
    "tfds_dir": case("--tfds-dir", "tfds2"),
    "train_split": case("--train-split", "train[:200]"),
    "val_split": case("--val-split", "train[350:]"),
    "test_split": case("--test-split", "test[:50]"),
    "full_train_split": case("--full-train-split", "train[:200]"),
    "width": case("--width", "32", refused="width is searched"),
    "learning_rate": case("--lr", "0.01", refused="learning_rate is searched"),
    "batch_size": case("--batch-size", "32"),
    "epochs": case("--epochs", "2"),
    "seed": case("--seed", "1"),
    "label_smoothing": case("--label-smoothing", "0.1"),
    "deterministic": case("--deterministic", subprocess=True),
    "threads": case("--threads", "1", subprocess=True),
    "tuner": case("--tuner", "hyperband"),
    "objective": case("--objective", "reading"),
    "max_trials": case("--max-trials", "2"),
    "executions_per_trial": case("--executions-per-trial", "2"),
    "backup_every": case("--backup-every", "2"),  # the retrain's command line says it too
    "patience": case("--patience", "1", reference=["--epochs", "6", "--patience", "6"]),
    "lr_min": case("--lr-min", "0.005"),
    "lr_max": case("--lr-max", "0.0005"),
    "width_min": case("--width-min", "512"),
    "width_max": case("--width-max", "64"),
    "epochs_min": case("--epochs-min", "2", refused="epochs_min bounds the search of epochs"),
    "search": case("--search", "depth"),
    "directory": case("--directory", "tuning2"),
    "project_name": case("--project-name", "other"),
    "overwrite": case("--overwrite", then=True),
    "export_dir": case("--export", "saved"),
    "summary": case("--summary", refused="only directory and project_name go with it"),
    "verbose": case("--verbose", "2"),
}
# What tune hands, unchanged, to each trial's model (the same build_model, from the same
# config groups, as train) or its training pipeline, and to the retrain: read off a
# trial's built model and pipeline and the retrain's config
# (test_tune_hands_each_model_and_step_flag_to_trials_and_the_retrain), no search needed.
# A value, or (a value, the reference's arguments): each strength with --augment on.
TUNE_MODEL = {
    "init": "he_normal",
    "dropout": "0.5",
    "batch_norm": None,
    "depth": "1",
    "activation": "sigmoid",
    "deskew": None,
    "lr_schedule": "cosine",
    "jit_compile": "on",
    "steps_per_execution": "2",
    "run_eagerly": None,
    "augment": "0.5",
    **{name: (value, ["--augment", "1"]) for name, value in STRENGTHS.items()},
    "non_digits": "0.5",
}
COMPARE = {
    "dataset": case("--dataset", "fashion_mnist"),
    "data_dir": case("--data-dir", "idx2"),
    "tfds_dir": case("--tfds-dir", "tfds2"),
    "train_split": case("--train-split", "train[:200]"),
    "val_split": case("--val-split", "train[350:]"),
    "test_split": case("--test-split", "test[:50]"),
    "learning_rate": case("--lr", "0.01"),
    "batch_size": case("--batch-size", "32"),
    "epochs": case("--epochs", "2"),
    "seed": case("--seed", "1"),
    "lr_schedule": case("--lr-schedule", "cosine"),
    "label_smoothing": case("--label-smoothing", "0.1"),
    "deterministic": case("--deterministic", subprocess=True),
    "jit_compile": case("--jit-compile", "on"),
    "steps_per_execution": case("--steps-per-execution", "2"),
    "threads": case("--threads", "1", subprocess=True),
    "run_eagerly": case("--run-eagerly"),
    # The base names its activations and depths, which a series sets itself (the series
    # run on real data: tests/test_series.py).
    "series": case("--series", "lab10", refused="sets each network's layers itself"),
    "activations": case("--activations", "sigmoid"),
    "inits": case("--inits", "he_normal"),
    "depths": case("--depths", "2"),
    "widths": case("--widths", "32"),
    "dropouts": case("--dropouts", "0.5"),
    "batch_norms": case("--batch-norms", "on"),
    "seeds": case("--seeds", "2"),
    "out": case("--out", "cmp2"),
    "verbose": case("--verbose", "0"),
}
UNTRUSTED = ["--model", "untrusted"]  # refused without --trust-model
EXPORT = {
    "model": case("--model", "other.keras"),
    "out": case("--out", "saved2"),
    "version": case("--version", "7"),
}
PREDICT = {
    "inputs": case("other.png"),
    "model": case("--model", "other.keras"),
    "json": case("--json"),
    "trust_model": case(
        "--model", "untrusted", "--trust-model", reference=["--model", "untrusted"]
    ),
}
EVALUATE = {
    "dataset": case("--dataset", "fashion_mnist"),
    "data_dir": case("--data-dir", "idx2"),
    "tfds_dir": case("--tfds-dir", "tfds2"),
    "model": case("--model", "other.keras"),
    "split": case("--split", "test[:50]"),
    "images": case("--images", "idx", refused="so data_dir would be ignored"),
    "json": case("--json"),
    "report": case("--report", "report"),
    "trust_model": case(
        "--model", "untrusted", "--trust-model", reference=["--model", "untrusted"]
    ),
}
CASES = {
    "train": TRAIN,
    "tune": TUNE,
    "compare": COMPARE,
    "export": EXPORT,
    "predict": PREDICT,
    "evaluate": EVALUATE,
}
SERVE_FLAGS = (
    "model_dir",
    "name",
    "host",
    "port",
    "max_body_bytes",
    "max_request_head_bytes",
    "labels",
    "enable_batching",
    "max_batch_size",
    "batch_timeout_micros",
    "num_batch_threads",
    "tensorflow_intra_op_parallelism",
    "trust_model",
    "access_log",  # below, and tests/test_operations.py
    "drain_seconds",  # tests/test_operations.py: the drain limit ends it at once
)


def _flags_of(command: str) -> set[str]:
    parser = cli.build_parser()
    sub = next(a for a in parser._actions if a.dest == "command").choices[command]
    return {a.dest for a in sub._actions if a.dest not in ("help", "config", "handler")}


@pytest.mark.parametrize("command", sorted(cli.COMMANDS))
def test_every_flag_has_a_case(command):
    covered = set(SERVE_FLAGS) if command == "serve" else set(CASES[command])
    covered |= set(TUNE_MODEL) if command == "tune" else set()
    assert _flags_of(command) == covered


def _trial_and_retrain(argv: list[str]) -> tuple[dict, dict]:
    """What a tune command line builds for its first trial (the model, its step and
    optimizer, its training pipeline) and the train config its retrain would run."""
    import keras_tuner

    from relunet.experiments import trials
    from relunet.experiments.retrain import retrain_config
    from relunet.experiments.tune import ReluNetHyperModel

    args = cli.build_parser().parse_args(argv)
    config = cli.config_from_args(args.config, args).validate()
    hypermodel, hp = ReluNetHyperModel(config, train_examples=300), keras_tuner.HyperParameters()
    model = hypermodel.build(hp)
    trial = {
        "model": model.config,
        "xla": model.jit_compile,
        "steps_per_execution": model.steps_per_execution,
        "run_eagerly": model.run_eagerly,
        "learning_rate": str(model.optimizer.get_config()["learning_rate"]),
        "pipeline": dataclasses.asdict(hypermodel.pipeline(hypermodel.values(hp))),
    }
    best = trials.TrialRow("0", "COMPLETED", hp.values, 0.5, 1, 1, 1.0)
    retrain = retrain_config(config, hypermodel.values(hp), best, None)
    return trial, dataclasses.asdict(retrain)


@pytest.mark.parametrize("flag", sorted(TUNE_MODEL))
def test_tune_hands_each_model_and_step_flag_to_trials_and_the_retrain(flag):
    value, reference = (
        TUNE_MODEL[flag] if isinstance(TUNE_MODEL[flag], tuple) else (TUNE_MODEL[flag], [])
    )
    option = ("--" + flag.replace("_", "-"), *([value] if value is not None else []))
    base_trial, base_retrain = _trial_and_retrain([*BASE["tune"], *reference])
    trial, retrain = _trial_and_retrain([*BASE["tune"], *reference, *option])
    assert trial != base_trial, f"--{flag} changed no trial"
    if flag != "jit_compile":  # trials only: the retrain compiles as train does
        assert retrain[flag] != base_retrain[flag], f"--{flag} changed no retrain"
    if flag in trial["pipeline"]["augment"]:  # the trial's pipeline and the retrain alike
        assert trial["pipeline"]["augment"][flag] == retrain[flag] == float(value)


# -- running a command and reading what it did ------------------------------------------

VOLATILE = re.compile(  # times: 3s, 7ms/step, a seconds column of a table (.1f)
    r"\d+(\.\d+)?(e-?\d+)?\s?(ms|s|us)(/step)?\b|epoch_seconds: [\d.e-]+|\b\d+\.\d\b|"
    r"\bin [\d.]+ ?s\b|\d{8}-\d{6}|Elapsed time: [\d:]+|Total elapsed time: [\d:hms ]+|"
    r"about [\d.]+ (min|h) left|memory \d+ MB"  # tune's progress line: time left, memory
)
TFEVENTS = re.compile(r"tfevents\..*")  # TensorBoard's file names carry a time and a host
VOLATILE_KEYS = {
    "timeline",
    "train_seconds",
    "train_samples_per_second",
    "seconds",
    "time",
    "memory_mb",  # a tune trial's resident memory as it ended
}


def _stable(value):
    """A JSON value without what differs between two identical runs (times, speeds)."""
    if isinstance(value, dict):
        return {k: _stable(v) for k, v in sorted(value.items()) if k not in VOLATILE_KEYS}
    if isinstance(value, list):
        return [_stable(v) for v in value]
    return value


def _file_digest(path: Path):
    if path.suffix == ".json":
        return _stable(json.loads(path.read_text()))
    if path.suffix == ".csv":
        rows = [line.split(",") for line in path.read_text().splitlines()]
        keep = [i for i, name in enumerate(rows[0]) if not any(w in name for w in VOLATILE_KEYS)]
        return [[row[i] for i in keep if i < len(row)] for row in rows]
    if path.suffix in (".keras", ".npz"):
        return _weights_digest(path)
    if path.name == "saved_model.pb":  # what it answers, not its bytes (not reproducible)
        return _saved_model_answers(path.parent)
    if "tfevents" in path.name or path.suffix in (".png", ".pb", ".lock"):
        return "present"
    if path.parent.name == "variables":
        return "present"
    return path.read_bytes().decode(errors="replace")


def _weights_digest(path: Path) -> str:
    """The arrays a .keras or .npz file holds, whatever the zip's timestamps."""
    if path.suffix == ".npz":
        with np.load(path) as stored:
            return str([np.asarray(stored[k]).tobytes().hex()[:64] for k in sorted(stored)])
    with zipfile.ZipFile(path) as archive:
        weights = archive.read("model.weights.h5")
    import h5py

    with h5py.File(io.BytesIO(weights), "r") as h5:
        arrays = []
        h5.visititems(
            lambda name, item: (
                arrays.append(f"{name}:{np.asarray(item).tobytes().hex()[:64]}")
                if isinstance(item, h5py.Dataset)
                else None
            )
        )
    return str(arrays)


def _saved_model_answers(folder: Path) -> list:
    import tensorflow as tf

    signature = tf.saved_model.load(str(folder)).signatures["serving_default"]
    images = np.random.default_rng(5).integers(0, 256, (4, 28, 28, 1), np.uint8)
    answers = signature(images=tf.constant(images))["probabilities"].numpy()
    return np.round(answers, 5).tolist()


@dataclass
class Outcome:
    code: int
    out: str
    err: str
    files: dict

    def same_as(self, other: Outcome) -> bool:
        return (self.code, self.out, self.files) == (other.code, other.out, other.files)

    def differences(self, other: Outcome) -> list[str]:
        """What differs, for a failure's message."""
        found = [f"code {self.code} != {other.code}"] if self.code != other.code else []
        if self.out != other.out:
            found.append(f"stdout:\n{self.out}\n---\n{other.out}")
        for name in sorted(set(self.files) | set(other.files)):
            if self.files.get(name) != other.files.get(name):
                found.append(
                    f"{name}: {str(self.files.get(name))[:300]} != "
                    f"{str(other.files.get(name))[:300]}"
                )
        return found


def _outcome(code: int, out: str, err: str, root: Path, before: set[Path]) -> Outcome:
    files = {
        TFEVENTS.sub("tfevents", str(p.relative_to(root))): _file_digest(p)
        for p in sorted(root.rglob("*"))
        if p.is_file() and p not in before and ".lock" not in p.name
    }
    return Outcome(code, VOLATILE.sub("T", out), err, files)


def run(argv: list[str], root: Path, in_subprocess: bool = False) -> Outcome:
    """Run `relunet ARGV` in `root`; what it printed and the files it wrote (those that
    were there before excluded)."""
    before = set(root.rglob("*"))
    if in_subprocess:
        done = subprocess.run(
            [sys.executable, "-m", "relunet.cli", *argv],
            cwd=root,
            capture_output=True,
            text=True,
            timeout=600,
        )
        return _outcome(done.returncode, done.stdout, done.stderr, root, before)
    handlers = {s: signal.getsignal(s) for s in (signal.SIGINT, signal.SIGTERM)}
    out, err = io.StringIO(), io.StringIO()
    cwd = os.getcwd()
    try:
        os.chdir(root)
        with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
            code = cli.main(argv)
    finally:
        os.chdir(cwd)
        for s, handler in handlers.items():
            signal.signal(s, handler)
    return _outcome(code, out.getvalue(), err.getvalue(), root, before)


def _with(base: list[str], args: list[str]) -> list[str]:
    """`base` with each flag in `args` set to its value there (or added)."""
    argv, extra = list(base), []
    i = 0
    while i < len(args):
        flag = args[i]
        has_value = i + 1 < len(args) and not args[i + 1].startswith("--")
        value = [args[i + 1]] if has_value and flag.startswith("--") else []
        if flag in argv and flag.startswith("--"):
            at = argv.index(flag)
            argv[at : at + 1 + len(value)] = [flag, *value]
        else:
            extra += [flag, *value]
        i += 1 + len(value)
    return [*argv, *extra]


@pytest.fixture(scope="module")
def workspace(tmp_path_factory):
    """Tiny data (two IDX folders of random digits), two models trained on it, images,
    and a SavedModel folder whose signature writes a file (one only --trust-model runs)."""
    root = tmp_path_factory.mktemp("flags")
    write_idx_folder(root / "idx", n_train=400, n_test=100, seed=0)
    write_idx_folder(root / "idx2", n_train=400, n_test=100, seed=1)
    for name, extra in (("model.keras", []), ("other.keras", ["--seed", "2"])):
        argv = ["train", *SMALL, *VAL, "--run-dir", f"made-{name}", "--verbose", "0", *extra]
        done = run(argv, root)
        assert done.code == 0, done.err
        (root / f"made-{name}" / "best.keras").rename(root / name)
    import tensorflow as tf

    digits = np.random.default_rng(0).integers(0, 256, (2, 28, 28, 1), np.uint8)
    for name, digit in zip(("digit.png", "other.png"), digits, strict=True):
        (root / name).write_bytes(tf.io.encode_png(digit).numpy())
    _write_untrusted(root / "untrusted" / "1")
    return root


def _write_untrusted(path: Path) -> None:
    import tensorflow as tf

    class WritesAFile(tf.Module):
        @tf.function(input_signature=[tf.TensorSpec([None, 28, 28, 1], tf.uint8, name="images")])
        def serve(self, images):
            tf.io.write_file(str(path.parent / "written.txt"), "a SavedModel wrote this")
            probabilities = tf.fill([tf.shape(images)[0], 10], 0.1)
            return {"probabilities": probabilities, "class": tf.argmax(probabilities, -1)}

    module = WritesAFile()
    tf.saved_model.save(module, str(path), signatures={"serving_default": module.serve})


REFERENCES: dict[tuple, Outcome] = {}
ALL_CASES = [
    pytest.param(command, flag, marks=pytest.mark.slow, id=f"{command} --{flag}")
    for command, cases in CASES.items()
    for flag in cases
]


@pytest.mark.slow
@pytest.mark.parametrize("command", sorted(CASES))
def test_the_same_command_twice_does_the_same(command, workspace, tmp_path):
    """What makes 'does something else' meaningful: the base run is reproducible."""
    first, second = (tmp_path / "a", tmp_path / "b")
    outcomes = []
    for where in (first, second):
        _populate(where, workspace)
        outcomes.append(run(BASE[command], where))
    assert outcomes[0].code == 0, outcomes[0].err
    assert outcomes[0].same_as(outcomes[1]), "\n".join(outcomes[0].differences(outcomes[1]))
    REFERENCES[(command, tuple(BASE[command]), False)] = outcomes[1]  # the flags' reference


@pytest.mark.parametrize("command, flag", ALL_CASES)
def test_a_flag_changes_what_the_command_does_or_is_refused(command, flag, workspace, tmp_path):
    this = CASES[command][flag]
    reference_dir, changed_dir = tmp_path / "reference", tmp_path / "changed"
    for where in (reference_dir, changed_dir):
        _populate(where, workspace)
    reference_args = _with(BASE[command], this.reference)
    if this.then:  # the flag acts on what a first run left: both dirs get that run first
        for where in (reference_dir, changed_dir):
            assert run(reference_args, where).code == 0
    changed = run(_with(reference_args, this.args), changed_dir, this.subprocess)
    if this.refused:
        lines = [line for line in changed.err.splitlines() if line.strip()]
        assert changed.code == 2 and len(lines) == 1 and this.refused in lines[0], changed.err
        return
    key = (command, tuple(reference_args), this.subprocess)
    if this.then or key not in REFERENCES:  # a base run's outcome is the same every time
        REFERENCES[key] = run(reference_args, reference_dir, this.subprocess)
    reference = REFERENCES[key]
    assert changed.code == 0, changed.err[-2000:]
    assert not changed.same_as(reference), f"--{flag} changed nothing: {changed.out[-500:]}"


def _populate(where: Path, workspace: Path) -> None:
    """A fresh folder with the workspace's inputs: links to what no command changes, and
    a copy of the tfds dir with the IDX folder already prepared (a run may add to it)."""
    where.mkdir(parents=True)
    for item in ("idx", "idx2", "model.keras", "other.keras", "digit.png", "other.png"):
        (where / item).symlink_to(workspace / item)
    (where / "untrusted").symlink_to(workspace / "untrusted", target_is_directory=True)
    shutil.copytree(workspace / "tfds", where / "tfds", symlinks=True)


# -- serve: a live server per case --------------------------------------------------------


def _serve(root: Path, *args: str) -> dict:
    """Start `relunet serve`, ask it what a client sees, stop it."""
    port = next((args[i + 1] for i, a in enumerate(args) if a == "--port"), None)
    port = port or str(free_ports()[0])
    name = next((args[i + 1] for i, a in enumerate(args) if a == "--name"), "relunet")
    argv = ["serve", *args] if "--port" in args else ["serve", *args, "--port", port]
    process = subprocess.Popen(
        [sys.executable, "-m", "relunet.cli", *argv],
        cwd=root,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    seen = {"code": None}
    try:
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline and process.poll() is None:
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{port}/v1/models/{name}") as r:
                    seen["status"] = json.loads(r.read())
                break
            except OSError:
                time.sleep(0.2)
        if process.poll() is None:
            seen["listening"] = _listening_addresses(int(port))
            try:
                urllib.request.urlopen(f"http://127.0.0.1:{port}/v1/models/relunet").close()
                seen["relunet"] = 200
            except urllib.error.HTTPError as error:
                seen["relunet"] = error.code
            body = json.dumps({"instances": [[[[0]] * 28] * 28] * 2}).encode()
            request = urllib.request.Request(
                f"http://127.0.0.1:{port}/v1/models/{name}:predict", data=body
            )
            try:
                with urllib.request.urlopen(request) as r:
                    seen["predict"] = r.status
            except urllib.error.HTTPError as error:
                seen["predict"] = error.code
            padded = urllib.request.Request(
                f"http://127.0.0.1:{port}/healthz", headers={"X-Pad": "p" * 3000}
            )
            try:
                urllib.request.urlopen(padded).close()
                seen["padded_head"] = 200
            except urllib.error.HTTPError as error:
                seen["padded_head"] = error.code
            seen.update(_batching_seen(f"http://127.0.0.1:{port}/v1/models/{name}"))
            seen["os_threads"] = len(os.listdir(f"/proc/{process.pid}/task"))
    finally:
        if process.poll() is None:
            process.send_signal(signal.SIGINT)
        seen["code"] = process.wait(timeout=60)
        seen["err"] = process.stderr.read()
        seen["out"] = process.stdout.read()
    return seen


def _batching_seen(url: str) -> dict:
    """What a client sees of labels and batching: the status under /labels/stable, how
    long one 1-image request takes alone, the X-Relunet-Batch headers of 4 concurrent
    ones, and the batch threads that answer one request after another."""

    def predict(answers=None, i=0):
        body = json.dumps({"instances": [[[[0]] * 28] * 28]}).encode()
        try:
            with urllib.request.urlopen(urllib.request.Request(f"{url}:predict", data=body)) as r:
                header, seen["alone_status"] = r.headers.get("X-Relunet-Batch"), r.status
        except urllib.error.HTTPError as error:
            header, seen["alone_status"] = None, error.code
        batch = header and dict(part.split("=") for part in header.split(", "))
        if answers is not None:
            answers[i] = batch
        return batch

    seen = {}
    try:
        urllib.request.urlopen(f"{url}/labels/stable").close()
        seen["labelled"] = 200
    except urllib.error.HTTPError as error:
        seen["labelled"] = error.code
    start = time.monotonic()
    predict()
    seen["alone_seconds"] = time.monotonic() - start
    answers = [None] * 4
    threads = [threading.Thread(target=predict, args=(answers, i)) for i in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    seen["batches"] = answers
    one_after_another = [predict() for _ in range(2 * (os.cpu_count() + 1))]
    seen["threads"] = {b["thread"] for b in one_after_another if b}
    return seen


def _listening_addresses(port: int) -> set[str]:
    """The local addresses the kernel lists as listening on `port` (/proc/net/tcp)."""
    found = set()
    for line in Path("/proc/net/tcp").read_text().splitlines()[1:]:
        local, state = line.split()[1], line.split()[3]
        address, hex_port = local.split(":")
        if state == "0A" and int(hex_port, 16) == port:
            found.add(".".join(str(int(address[i : i + 2], 16)) for i in (6, 4, 2, 0)))
    return found


@pytest.fixture(scope="module")
def served(workspace):
    """Two folders of versions: relunet's export of each model."""
    for model, folder in (("model.keras", "versions"), ("other.keras", "versions2")):
        assert run(["export", "--model", model, "--out", folder], workspace).code == 0
    return workspace


@pytest.mark.slow
def test_every_serve_flag_changes_what_the_server_does_or_is_refused(served):
    """Six servers: the base, and five that each change what flags they can without one
    hiding another (each flag's effect is read where no other flag acts)."""
    base = _serve(served, "versions")
    assert base["status"]["model_version_status"][0]["version"] == "1", base["err"]
    assert base["listening"] == {"127.0.0.1"} and base["relunet"] == 200
    assert base["predict"] == 200 and base["labelled"] == 400 and all(base["batches"])
    assert base["padded_head"] == 200
    assert len(base["threads"]) <= os.cpu_count()
    (served / "versions2" / "1").rename(served / "versions2" / "4")
    port = str(free_ports()[0])
    moved = _serve(
        served,
        "versions2",  # model_dir: another folder of versions serves other versions
        "--name",  # name: the model answers under its new name only
        "digits",
        "--host",  # host: the listening socket's address
        "0.0.0.0",
        "--port",  # port: where it listens (it answered there)
        port,
        "--label",  # labels: /labels/stable names version 4
        "stable=4",
        "--enable-batching",  # enable_batching: off, no request says how its batch ran
        "false",
        "--max-body-bytes",  # max_body_bytes: a 1-image request passes, a 2-image one is 413
        "6000",
        "--max-request-head-bytes",  # max_request_head_bytes: a 3,000-byte header is 431
        "2048",
    )
    assert moved["status"]["model_version_status"][0]["version"] == "4", moved["err"]
    assert moved["relunet"] == 404 and moved["listening"] == {"0.0.0.0"}
    assert moved["labelled"] == 200 and moved["alone_status"] == 200
    assert moved["batches"] == [None] * 4 and moved["predict"] == 413
    assert moved["padded_head"] == 431
    # trust_model: a SavedModel that writes files is refused unless trusted
    refused = _serve(served, "untrusted")
    assert refused["code"] == 2 and "--trust-model" in refused["err"]
    trusted = _serve(served, "untrusted", "--trust-model")
    assert trusted["status"]["model_version_status"][0]["version"] == "1"
    # batch_timeout_micros: a lone request waits for its batch to fill, and 4 concurrent
    # ones are one batch; num_batch_threads: one thread more than the default's
    threads = str(os.cpu_count() + 1)
    waiting = _serve(
        served, "versions", "--batch-timeout-micros", "300000", "--num-batch-threads", threads
    )
    assert len(waiting["threads"]) == os.cpu_count() + 1
    # A lone request waits the 300 ms for company, which the default (no wait) does not:
    # the difference, both measured here, not a wall time that a busy machine stretches.
    assert waiting["alone_seconds"] >= 0.3
    assert waiting["alone_seconds"] - base["alone_seconds"] > 0.2
    assert [b["requests"] for b in waiting["batches"]] == ["4"] * 4
    # max_batch_size: the same 4 requests, in batches of at most 2 images
    # access_log: a line for each request on stdout, where the others write none
    # tensorflow_intra_op_parallelism: TensorFlow's pool for one op's threads, 8 not 1
    small = _serve(
        served,
        "versions",
        "--batch-timeout-micros",
        "300000",
        "--max-batch-size",
        "2",
        "--access-log",
        "--tensorflow-intra-op-parallelism",
        "8",
    )
    assert {b["images"] for b in small["batches"]} == {"2"}, small["batches"]
    assert small["os_threads"] >= base["os_threads"] + 4, (small["os_threads"], base)
    logged = [
        line for line in small["out"].splitlines() if " POST /v1/models/relunet:predict " in line
    ]
    assert len(logged) >= 5 and not any(" POST " in line for line in base["out"].splitlines())
    # ... which mean nothing without batching: refused
    refused = _serve(served, "versions", "--enable-batching", "false", "--max-batch-size", "2")
    assert refused["code"] == 2 and "max_batch_size needs enable_batching true" in refused["err"]
