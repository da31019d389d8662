"""The `relunet` command: train, tune, compare, export, predict, evaluate.

The flags of train, tune and compare are made from their config dataclasses' fields
(`relunet.config`): one declaration, one default, one help text each. Flags and the
paths they name are checked before TensorFlow is imported (a few seconds), so a typo
is answered at once. Bad input ends with one line on stderr and exit status 2.
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

from relunet import __version__, sources
from relunet.checks import (
    check_choice,
    check_output_dir,
    check_positive,
    check_split,
    resolve_model_path,
)
from relunet.config import DATASETS, PRESETS, CompareConfig, DataConfig, TrainConfig, TuneConfig
from relunet.distribute.cluster import worker_task
from relunet.errors import Preempted, RelunetError, TrainingDiverged, TuningFailed, WorkerLost
from relunet.inputs import read_npy_images
from relunet.quiet import import_tensorflow_quietly
from relunet.rundir import RunDir

_CLI_START = time.time()  # once the command's own (light) modules are in: a timeline's origin

# EX_TEMPFAIL: stopped by a signal after a final backup, or a worker was lost; rerun to resume
PREEMPTED = 75


class _Parser(argparse.ArgumentParser):
    """argparse with a one-line error instead of usage plus message."""

    def error(self, message: str):
        self.exit(2, f"{self.prog}: error: {message} (see {self.prog} --help)\n")


def build_parser(train_defaults: dict | None = None) -> argparse.ArgumentParser:
    """The relunet parser; `train_defaults` (a preset) replaces train's defaults."""
    parser = _Parser(
        prog="relunet", description="ReLU vs Sigmoid on MNIST, as a resumable Keras trainer."
    )
    parser.add_argument("--version", action="version", version=f"relunet {__version__}")
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    train = commands.add_parser("train", help="train (or resume) a model on MNIST")
    add_config_flags(train, TrainConfig, train_defaults or {})
    train.add_argument(
        "--preset",
        choices=sorted(PRESETS),
        help="start from a preset: "
        + "; ".join(
            f"{name}: {', '.join(f'{k}={v}' for k, v in values.items()) or 'the defaults'}"
            for name, values in PRESETS.items()
        )
        + "; explicit flags override it",
    )
    train.set_defaults(handler=_train)
    tune = commands.add_parser("tune", help="search learning rate and width with keras-tuner")
    add_config_flags(tune, TuneConfig)
    tune.set_defaults(handler=_tune)
    compare = commands.add_parser(
        "compare", help="ReLU vs sigmoid: train each activation and depth, plot gradient flow"
    )
    add_config_flags(compare, CompareConfig)
    compare.set_defaults(handler=_compare)
    _add_export(
        commands.add_parser("export", help="export a .keras model as a TF Serving SavedModel")
    )
    _add_predict(commands.add_parser("predict", help="classify image files or .npy arrays"))
    _add_evaluate(
        commands.add_parser("evaluate", help="report a model's loss and accuracy on a split")
    )
    _add_serve(
        commands.add_parser(
            "serve",
            help="serve SavedModel versions over TF Serving's REST API, with a "
            "page to draw digits on",
        )
    )
    return parser


_TYPES = {"str": str, "int": int, "float": float}
_METAVARS = {"int": "N", "float": "X", "str": "NAME"}


def add_config_flags(
    parser: argparse.ArgumentParser,
    config: type,
    defaults: dict[str, Any] | None = None,
    only: tuple[str, ...] | None = None,
) -> None:
    """One flag per field of the config dataclass (or the fields named in `only`): --name
    (or its `flags`), its type, its default (or `defaults`' value) and its help."""
    for field in dataclasses.fields(config):
        if only is not None and field.name not in only:
            continue
        meta = field.metadata
        kind = str(field.type).replace(" | None", "")
        default = (defaults or {}).get(field.name, field.default)
        names = meta.get("flags", (f"--{field.name.replace('_', '-')}",))
        help_text = meta["help"]
        if "choices" in meta:
            help_text += f"; one of {', '.join(map(str, meta['choices']))}"
        if kind == "bool":
            parser.add_argument(
                *names, dest=field.name, action="store_true", default=default, help=help_text
            )
            continue
        if default is not None and "(default" not in help_text:
            shown = ",".join(map(str, default)) if isinstance(default, tuple) else default
            help_text += f" (default: {shown})".replace("%", "%%")
        if kind.startswith("tuple["):  # comma-separated, and the flag may repeat
            parser.add_argument(
                *names,
                dest=field.name,
                action="append",
                metavar=meta.get("metavar", "LIST"),
                help=help_text,
            )  # unset: None, the field's default
            continue
        parser.add_argument(
            *names,
            dest=field.name,
            type=_TYPES[kind],
            default=default,
            metavar=meta.get("metavar", _METAVARS[kind]),
            help=help_text,
        )


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


def _add_model_flag(p: argparse.ArgumentParser, what: str) -> None:
    p.add_argument("--model", required=True, metavar="PATH", help=what)


def _add_trust_flag(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--trust-model",
        action="store_true",
        help="run a SavedModel even if its signature uses ops relunet's exports never "
        "do (file or network access, Python code): only for models you trust",
    )


def _add_export(p: argparse.ArgumentParser) -> None:
    _add_model_flag(p, "a .keras file or a run dir (uses its best.keras)")
    p.add_argument(
        "--out",
        default="saved_models/relunet",
        metavar="DIR",
        help="folder of versions (default: %(default)s)",
    )
    p.add_argument(
        "--version", type=int, metavar="N", help="version number (default: the next free one)"
    )
    p.set_defaults(handler=_export)


def _add_predict(p: argparse.ArgumentParser) -> None:
    _add_model_flag(p, "a .keras file, run dir, SavedModel or folder of versions")
    p.add_argument(
        "inputs", nargs="+", metavar="FILE", help="PNG/JPEG/GIF/BMP images or .npy arrays"
    )
    p.add_argument("--json", action="store_true", help="print JSON instead of one line per input")
    _add_trust_flag(p)
    p.set_defaults(handler=_predict)


def _add_evaluate(p: argparse.ArgumentParser) -> None:
    _add_model_flag(p, "a .keras file, run dir, SavedModel or folder of versions")
    add_config_flags(p, DataConfig, only=("dataset", "data_dir", "tfds_dir"))
    p.add_argument(
        "--split",
        default=DataConfig.test_split,
        metavar="SPLIT",
        help="tfds split (default: %(default)s)",
    )
    p.add_argument(
        "--batch-size", type=int, default=1024, metavar="N", help="(default: %(default)s)"
    )
    p.add_argument("--json", action="store_true", help="print JSON")
    p.add_argument(
        "--report",
        metavar="DIR",
        help="also write a report into DIR: confusion "
        "matrix (PNG, CSV), per-class precision, recall and F1 (table, JSON), the "
        "most confident mistakes (PNG)",
    )
    _add_trust_flag(p)
    p.set_defaults(handler=_evaluate)


def _add_serve(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "model_dir",
        metavar="MODEL_DIR",
        help="a folder of numbered SavedModel versions, as relunet export writes",
    )
    p.add_argument(
        "--name", default="relunet", help="the model's name in the URLs (default: %(default)s)"
    )
    p.add_argument(
        "--host",
        default="127.0.0.1",
        help="address to listen on (default: %(default)s, this machine only)",
    )
    p.add_argument(
        "--port",
        type=int,
        default=8501,
        metavar="N",
        help="(default: %(default)s, TF Serving's REST port)",
    )
    p.add_argument(
        "--max-body-bytes",
        type=int,
        default=8 << 20,
        metavar="N",
        help="larger requests are refused with 413 (default: %(default)s)",
    )
    _add_trust_flag(p)
    p.set_defaults(handler=_serve)


def _train(args: argparse.Namespace) -> int:
    config = config_from_args(TrainConfig, args).validate()
    _check_data(config)
    check_output_dir(config.with_run_dir().run_dir, "run dir")
    if config.run_dir:
        RunDir(config.run_dir).check(config)
    if config.strategy == "multiworker":
        worker_task()
    try:
        with _signals_end_the_run():
            import_tensorflow_quietly()
            from relunet.train import train

            train(config, timeline={"cli": _CLI_START, "imports": time.time()})
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


def _tune(args: argparse.Namespace) -> int:
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
    import_tensorflow_quietly()
    from relunet.tune import tune

    try:
        tune(config)
    except TuningFailed as error:
        print(f"relunet: {error}", file=sys.stderr)
        return 1
    return 0


def _compare(args: argparse.Namespace) -> int:
    config = config_from_args(CompareConfig, args).validate().with_out()
    _check_data(config)
    check_output_dir(config.out, "output folder")
    out = Path(config.out)
    if out.exists() and any(out.iterdir()):
        raise RelunetError(f"The output folder {out} already holds something; pick a new --out.")
    import_tensorflow_quietly()
    from relunet.compare import compare

    compare(config)
    return 0


def _export(args: argparse.Namespace) -> int:
    model_path = resolve_model_path(args.model)
    if model_path.suffix != ".keras":
        raise RelunetError(
            f"{model_path} is not a .keras model file (or a run dir holding best.keras)."
        )
    out = Path(args.out)
    check_output_dir(out, "export target")
    import_tensorflow_quietly()
    from relunet.export import export_saved_model
    from relunet.inference import load_classifier

    export_saved_model(load_classifier(model_path).keras_model, out, args.version)
    return 0


def _predict(args: argparse.Namespace) -> int:
    resolve_model_path(args.model)
    for name in args.inputs:
        if not Path(name).is_file():
            raise RelunetError(f"The input {name} does not exist or is not a file.")
        if name.lower().endswith(".npy"):
            read_npy_images(Path(name))  # a wrong array is answered before TensorFlow
    import_tensorflow_quietly()
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


def _evaluate(args: argparse.Namespace) -> int:
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
    import_tensorflow_quietly()
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


def _serve(args: argparse.Namespace) -> int:
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
    import_tensorflow_quietly()
    from relunet.serve import serve

    serve(str(folder), args.name, args.host, args.port, args.trust_model, args.max_body_bytes)
    return 0


@contextlib.contextmanager
def _signals_end_the_run() -> Iterator[None]:
    """Outside `fit` (start-up, reading the data, the test evaluation), SIGTERM and SIGINT
    end the run at once with Preempted: every file is written atomically, and the next
    run continues from the last backup. Inside `fit`, the StopOnSignal callback takes over
    (finish the chunk, back up, stop) and puts these handlers back after."""

    def stop(signum, frame):
        raise Preempted(
            f"{signal.Signals(signum).name} received outside training; every file written is whole"
        )

    previous = {s: signal.signal(s, stop) for s in (signal.SIGTERM, signal.SIGINT)}
    try:
        yield
    finally:
        for s, handler in previous.items():
            signal.signal(s, handler)


def _check_data(config: DataConfig) -> None:
    """The data dir: a folder whose IDX files are whole, unless a prepared copy of them
    is at hand (checked without reading them again)."""
    _check_folder(config.data_dir, "data dir")
    sources.check_idx_folder(config.dataset, config.data_dir, config.tfds_dir)


def _ignore_signals() -> None:
    for signum in (signal.SIGTERM, signal.SIGINT):
        signal.signal(signum, signal.SIG_IGN)


def _check_folder(path: str | None, what: str) -> None:
    if path and not Path(path).is_dir():
        raise RelunetError(f"The {what} {path} does not exist or is not a folder.")


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    if getattr(args, "preset", None):  # again, with the preset's values as the defaults
        args = build_parser(PRESETS[args.preset]).parse_args(argv)
    try:
        return args.handler(args)
    except RelunetError as error:
        message = " ".join(str(error).split())
        print(f"relunet {args.command}: error: {message}", file=sys.stderr)
        return 2
    except OSError as error:  # a full disk, a folder made read-only under a running job
        where = f": {error.filename}" if error.filename else ""
        print(
            f"relunet {args.command}: error: {error.strerror or error}{where}. Nothing "
            "half-written was left; fix that and run the command again.",
            file=sys.stderr,
        )
        return 2
    except KeyboardInterrupt:
        print(f"relunet {args.command}: interrupted", file=sys.stderr)
        return 130


def entry() -> None:
    """The `relunet` command: main(), then out at once. The results are written and
    fsynced by then; the interpreter's teardown of TensorFlow would only cost seconds."""
    code = main()
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(code)


if __name__ == "__main__":
    entry()
