"""What each `relunet` command does, once its flags are parsed (see relunet.cli).

Each checks its flags and the paths they name before TensorFlow is imported (a few
seconds), so a typo is answered at once, then imports what it needs and runs.
"""

from __future__ import annotations

import argparse
import contextlib
import dataclasses
import json
import os
import signal
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from relunet import sources
from relunet.checks import (
    check_choice,
    check_output_dir,
    check_positive,
    check_split,
    resolve_model_path,
)
from relunet.config import DATASETS, CompareConfig, DataConfig, TrainConfig, TuneConfig
from relunet.distribute.cluster import worker_task
from relunet.errors import Preempted, RelunetError, TrainingDiverged, TuningFailed, WorkerLost
from relunet.inputs import read_npy_images
from relunet.quiet import import_tensorflow_quietly, say_now
from relunet.rundir import RunDir, with_run_dir

START = time.time()  # once the command's own (light) modules are in: a timeline's origin

# EX_TEMPFAIL: stopped by a signal after a final backup, or a worker was lost; rerun to resume
PREEMPTED = 75


def config_from_args(config: type, args: argparse.Namespace) -> Any:
    """The config dataclass filled from parsed flags; lists parsed from their commas."""
    values = {}
    for field in dataclasses.fields(config):
        value = getattr(args, field.name)
        if str(field.type).startswith("tuple["):
            value = (
                field.default
                if value is None
                else _parse_list(value, int if "int" in str(field.type) else str, field.name)
            )
        values[field.name] = value
    return config(**values)


def _parse_list(texts: list[str], kind: type, what: str) -> tuple:
    items = [item.strip() for text in texts for item in text.split(",") if item.strip()]
    try:
        return tuple(dict.fromkeys(kind(item) for item in items))
    except ValueError:
        raise RelunetError(
            f"{what} must be a comma-separated list of {kind.__name__} values. "
            f"Received: {','.join(texts)!r}."
        ) from None


def train(args: argparse.Namespace) -> int:
    config = with_run_dir(config_from_args(TrainConfig, args).validate())
    _check_data(config)
    check_output_dir(config.run_dir, "run dir")
    RunDir(config.run_dir).check(config)
    if config.strategy == "multiworker":
        worker_task()
    try:
        with _signals_end_the_run():
            _import_tensorflow()
            from relunet.train import train

            train(config, timeline={"cli": START, "imports": time.time()})
            _ignore_signals()  # the results are written: nothing is left to interrupt
    except TrainingDiverged as error:
        print(f"relunet: {error}", file=sys.stderr)
        return 1
    except Preempted as error:
        print(
            f"relunet train: interrupted: {error}; rerun the same command to resume",
            file=sys.stderr,
        )
        return PREEMPTED
    except WorkerLost as error:
        print(f"relunet train: {error}", file=sys.stderr)
        return PREEMPTED
    return 0


def tune(args: argparse.Namespace) -> int:
    config = config_from_args(TuneConfig, args).validate()
    from relunet import trials

    if config.summary:
        trials.summarize(trials.project_dir(config))
        return 0
    check_output_dir(config.directory, "tuning directory")
    if config.export_dir:
        check_output_dir(config.export_dir, "export target")
    trials.check_search_space(config)
    _check_data(config)
    _import_tensorflow()
    from relunet.tune import tune

    try:
        tune(config)
    except TuningFailed as error:
        print(f"relunet: {error}", file=sys.stderr)
        return 1
    return 0


def compare(args: argparse.Namespace) -> int:
    config = config_from_args(CompareConfig, args).validate().with_out()
    _check_data(config)
    check_output_dir(config.out, "output folder")
    out = Path(config.out)
    if out.exists() and any(out.iterdir()):
        raise RelunetError(f"The output folder {out} already holds something; pick a new --out.")
    _import_tensorflow()
    from relunet.compare import compare

    compare(config)
    return 0


def export(args: argparse.Namespace) -> int:
    model_path = resolve_model_path(args.model)
    if model_path.suffix != ".keras":
        raise RelunetError(
            f"{model_path} is not a .keras model file (or a run dir holding best.keras)."
        )
    out = Path(args.out)
    check_output_dir(out, "export target")
    _import_tensorflow()
    from relunet.export import export_saved_model
    from relunet.inference import load_classifier

    export_saved_model(load_classifier(model_path).keras_model, out, args.version)
    return 0


def predict(args: argparse.Namespace) -> int:
    resolve_model_path(args.model)
    for name in args.inputs:
        if not Path(name).is_file():
            raise RelunetError(f"The input {name} does not exist or is not a file.")
        if name.lower().endswith(".npy"):
            read_npy_images(Path(name))  # a wrong array is answered before TensorFlow
    _import_tensorflow()
    import numpy as np

    from relunet.inference import load_classifier, read_inputs

    inputs = read_inputs(args.inputs)
    classifier = load_classifier(args.model, trust_model=args.trust_model)
    probabilities = classifier.probabilities(np.stack([image for _, image in inputs]))
    results = [
        {
            "input": name,
            "class": int(p.argmax()),
            "probability": round(float(p.max()), 6),
            "probabilities": [round(float(x), 6) for x in p],
        }
        for (name, _), p in zip(inputs, probabilities, strict=True)
    ]
    if args.json:
        print(json.dumps(results, indent=2))
    else:
        width = max(len(r["input"]) for r in results)
        for r in results:
            print(f"{r['input']:<{width}}  {r['class']}  (p={r['probability']:.3f})")
    return 0


def evaluate(args: argparse.Namespace) -> int:
    check_choice("dataset", args.dataset, DATASETS)
    check_split(args.split, "split")
    check_positive("batch_size", args.batch_size)
    _check_data(DataConfig(dataset=args.dataset, data_dir=args.data_dir, tfds_dir=args.tfds_dir))
    resolve_model_path(args.model)
    if args.report:
        check_output_dir(args.report, "report folder")
        if Path(args.report).is_dir() and any(Path(args.report).iterdir()):
            raise RelunetError(
                f"The report folder {args.report} already holds something; "
                "pick a new --report folder."
            )
    _import_tensorflow()
    from relunet import data
    from relunet.inference import evaluate, load_classifier

    classifier = load_classifier(args.model, trust_model=args.trust_model)
    source = data.find_source(args.dataset, args.data_dir, args.tfds_dir, verbose=not args.json)
    arrays = data.split_arrays(source, args.split)
    result = evaluate(classifier, arrays, args.batch_size)
    result.update(model=str(classifier.path), dataset=args.dataset, split=args.split)
    if args.report:
        from relunet.report import write_report

        title = f"{args.dataset} {args.split}, {classifier.path}"
        result["report"] = write_report(classifier, arrays, args.report, title)
    if args.json:
        print(json.dumps(result, indent=2))
        return 0
    print(
        f"{args.dataset} {args.split}: accuracy {result['accuracy']:.4f}, "
        f"loss {result['loss']:.4f} ({result['examples']} images, {classifier.path})"
    )
    if args.report:
        print(f"report: {', '.join(result['report'].values())}")
    return 0


def serve(args: argparse.Namespace) -> int:
    folder = Path(args.model_dir)
    if not folder.is_dir():
        raise RelunetError(f"The model folder {folder} does not exist or is not a folder.")
    if (folder / "saved_model.pb").is_file():
        raise RelunetError(
            f"{folder} is one SavedModel version; serve the folder of versions "
            f"that holds it ({folder.parent})."
        )
    if not any(p.name.isdigit() and (p / "saved_model.pb").is_file() for p in folder.iterdir()):
        raise RelunetError(
            f"{folder} holds no SavedModel versions (numbered folders with a "
            "saved_model.pb, as relunet export writes)."
        )
    if not 1 <= args.port <= 65535:
        raise RelunetError(f"port must lie in 1..65535. Received: {args.port}.")
    if not args.name or not all(c.isalnum() or c in "-_." for c in args.name):
        raise RelunetError(
            f"name must be letters, digits, '-', '_' or '.'. Received: {args.name!r}."
        )
    check_positive("max_body_bytes", args.max_body_bytes)
    _import_tensorflow()
    from relunet.serve import serve

    serve(str(folder), args.name, args.host, args.port, args.trust_model, args.max_body_bytes)
    return 0


def _check_data(config: DataConfig) -> None:
    """The data dir: a folder whose IDX files are whole, unless a prepared copy of them
    is at hand (checked without reading them again)."""
    _check_folder(config.data_dir, "data dir")
    sources.check_idx_folder(config.dataset, config.data_dir, config.tfds_dir)


@contextlib.contextmanager
def _signals_end_the_run() -> Iterator[None]:
    """Outside `fit` (start-up, reading the data, the test evaluation), SIGTERM and SIGINT
    end the process at once with status 75: every file is written atomically and the
    run dir's lock dies with the process, so the next run continues from the last backup.
    The handler exits rather than raising, because an exception raised inside an import
    or a library call can be caught and turned into another error there. Inside `fit`,
    the StopOnSignal callback takes over (finish the chunk, back up, stop) and puts these
    handlers back after."""

    def stop(signum, frame):
        with contextlib.suppress(Exception):  # keep what was printed; a write may be under way
            sys.stdout.flush()
        say_now(
            f"relunet train: interrupted: {signal.Signals(signum).name} received outside "
            "training; every file written is whole; rerun the same command to resume"
        )
        os._exit(PREEMPTED)

    previous = {s: signal.signal(s, stop) for s in (signal.SIGTERM, signal.SIGINT)}
    try:
        yield
    finally:
        for s, handler in previous.items():
            signal.signal(s, handler)


def _import_tensorflow() -> None:
    """Import TensorFlow quietly, with XLA's persistent compilation cache on: a run of a
    network compiled before skips compiling it (measured: about 1 s a run). The cache
    lives in $RELUNET_XLA_CACHE (default ~/.cache/relunet/xla; "off" turns it off)."""
    where = os.environ.get("RELUNET_XLA_CACHE") or os.path.join(
        os.environ.get("XDG_CACHE_HOME") or os.path.expanduser("~/.cache"), "relunet", "xla"
    )
    flags = os.environ.get("TF_XLA_FLAGS", "")
    if where != "off" and "tf_xla_persistent_cache_directory" not in flags:
        os.environ["TF_XLA_FLAGS"] = f"{flags} --tf_xla_persistent_cache_directory={where}".strip()
    import_tensorflow_quietly()


def _ignore_signals() -> None:
    for signum in (signal.SIGTERM, signal.SIGINT):
        signal.signal(signum, signal.SIG_IGN)


def _check_folder(path: str | None, what: str) -> None:
    if path and not Path(path).is_dir():
        raise RelunetError(f"The {what} {path} does not exist or is not a folder.")
