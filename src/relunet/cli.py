"""The `relunet` command: train, tune, compare, export, predict, evaluate.

Flags are parsed and checked before TensorFlow is imported (a few seconds), so a
typo is answered at once. Bad input ends with one line on stderr and exit status 2.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import sys
from pathlib import Path

from relunet.checks import (check_choice, check_output_dir, check_positive, check_split,
                            resolve_model_path)
from relunet.config import (ACTIVATIONS, DATASETS, INITS, PRESETS, SEARCHABLE, STRATEGIES,
                            TUNERS, CompareConfig, TrainConfig, TuneConfig)
from relunet.errors import RelunetError
from relunet.quiet import import_tensorflow_quietly

_DEFAULTS = TrainConfig()
PREEMPTED = 75  # EX_TEMPFAIL: stopped by a signal after a final backup, or a worker was lost; rerun to resume
_TUNE = TuneConfig()
_COMPARE = CompareConfig()


class _Parser(argparse.ArgumentParser):
    """argparse with a one-line error instead of usage plus message."""

    def error(self, message: str):
        self.exit(2, f"{self.prog}: error: {message} (see {self.prog} --help)\n")


def build_parser(train_defaults: dict | None = None) -> argparse.ArgumentParser:
    """The relunet parser; `train_defaults` (a preset) replaces train's defaults."""
    parser = _Parser(prog="relunet", description="ReLU vs Sigmoid on MNIST, as a resumable Keras trainer.")
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    _add_train(commands.add_parser("train", help="train (or resume) a model on MNIST"),
               train_defaults or {})
    _add_tune(commands.add_parser("tune", help="search learning rate and width with keras-tuner"))
    _add_compare(commands.add_parser("compare", help="ReLU vs sigmoid: train each activation and depth, plot gradient flow"))
    _add_export(commands.add_parser("export", help="export a .keras model as a TF Serving SavedModel"))
    _add_predict(commands.add_parser("predict", help="classify image files or .npy arrays"))
    _add_evaluate(commands.add_parser("evaluate", help="report a model's loss and accuracy on a split"))
    return parser


def _add_data_flags(p: argparse.ArgumentParser) -> None:
    p.add_argument("--dataset", default=_DEFAULTS.dataset, metavar="NAME", help=f"one of {', '.join(DATASETS)} (default: %(default)s)")
    p.add_argument("--data-dir", metavar="DIR", help="folder of the four IDX files (default: $RELUNET_DATA_DIR)")
    p.add_argument("--tfds-dir", metavar="DIR", help="tfds data dir (default: $TFDS_DATA_DIR or ~/tensorflow_datasets)")


def _add_train(p: argparse.ArgumentParser, defaults: dict) -> None:
    d = _DEFAULTS
    _add_data_flags(p)
    p.add_argument("--train-split", default=d.train_split, metavar="SPLIT", help="tfds split (default: %(default)s)")
    p.add_argument("--val-split", default=d.val_split, metavar="SPLIT", help="tfds split, or none (default: %(default)s)")
    p.add_argument("--test-split", default=d.test_split, metavar="SPLIT", help="tfds split (default: %(default)s)")
    p.add_argument("--width", type=int, default=d.width, metavar="N", help="units per hidden layer (default: %(default)s)")
    p.add_argument("--depth", type=int, default=d.depth, metavar="N", help="hidden layers (default: %(default)s)")
    p.add_argument("--activation", default=d.activation, metavar="NAME", help=f"one of {', '.join(ACTIVATIONS)} (default: %(default)s)")
    p.add_argument("--init", default=d.init, metavar="NAME", help=f"kernel initializer, one of {', '.join(INITS)} (default: %(default)s)")
    p.add_argument("--lr", "--learning-rate", dest="learning_rate", type=float, default=d.learning_rate, metavar="LR",
                   help="Adam learning rate (default: %(default)s)")
    p.add_argument("--batch-size", type=int, default=d.batch_size, metavar="N", help="(default: %(default)s)")
    p.add_argument("--epochs", type=int, default=d.epochs, metavar="N", help="(default: %(default)s)")
    p.add_argument("--seed", type=int, default=d.seed, metavar="N", help="(default: %(default)s)")
    p.add_argument("--deterministic", action="store_true", help="also make TensorFlow ops deterministic (slower, and without XLA); resumed runs then end bitwise equal to uninterrupted ones")
    p.add_argument("--lr-schedule", default=d.lr_schedule, metavar="NAME", help="constant or cosine (default: %(default)s)")
    p.add_argument("--label-smoothing", type=float, default=d.label_smoothing, metavar="X", help="(default: %(default)s)")
    p.add_argument("--preset", choices=sorted(PRESETS), help="start from a preset: " + "; ".join(
        f"{name}: {', '.join(f'{k}={v}' for k, v in values.items()) or 'the defaults'}" for name, values in PRESETS.items()) + "; explicit flags override it")
    p.add_argument("--jit-compile", default=d.jit_compile, metavar="MODE", help="XLA: on, off or auto (default: %(default)s)")
    p.add_argument("--steps-per-execution", type=int, default=d.steps_per_execution, metavar="N", help="train steps per call into the compiled step (default: %(default)s)")
    p.add_argument("--threads", type=int, default=d.threads, metavar="N", help="TensorFlow intra-op threads (default: one per core)")
    p.add_argument("--strategy", default=d.strategy, metavar="NAME", help=f"tf.distribute: {', '.join(STRATEGIES)} (multiworker reads TF_CONFIG) (default: %(default)s)")
    p.add_argument("--cpu-replicas", type=int, metavar="N", help="with --strategy mirrored: split the CPU into N logical devices (for testing)")
    p.add_argument("--grad-norms", action="store_true", help="also log each Dense kernel's gradient norm per epoch (grad_norm/dense_0, ...)")
    p.add_argument("--run-dir", metavar="DIR", help="where the run lives; rerun with the same one to resume (default: runs/<timestamp>)")
    p.add_argument("--restart", action="store_true", help="discard the run dir's progress (and an unusable backup) and train from the start")
    p.add_argument("--backup-every", type=int, default=d.backup_every, metavar="N",
                   help="batches between backups, besides one per epoch (default: %(default)s)")
    p.add_argument("--verbose", type=int, choices=(0, 1, 2), help="0 silent, 1 progress bar, 2 one line per epoch (default: 1 on a terminal, else 2)")
    p.set_defaults(handler=_train, **defaults)


def _add_tune(p: argparse.ArgumentParser) -> None:
    t = _TUNE
    _add_data_flags(p)
    p.add_argument("--train-split", default=t.train_split, metavar="SPLIT", help="trials train on it (default: %(default)s)")
    p.add_argument("--val-split", default=t.val_split, metavar="SPLIT", help="the objective, val_accuracy, is measured on it (default: %(default)s)")
    p.add_argument("--full-train-split", default=t.full_train_split, metavar="SPLIT", help="the best hyperparameters are retrained on it (default: %(default)s)")
    p.add_argument("--test-split", default=t.test_split, metavar="SPLIT", help="the retrained model is tested once on it (default: %(default)s)")
    p.add_argument("--tuner", default=t.tuner, metavar="NAME", help=f"one of {', '.join(TUNERS)} (default: %(default)s)")
    p.add_argument("--max-trials", type=int, default=t.max_trials, metavar="N", help="trials in all; for hyperband a cap (default: %(default)s)")
    p.add_argument("--epochs", type=int, default=t.epochs, metavar="N", help="max epochs per trial, hyperband's max_epochs (default: %(default)s)")
    p.add_argument("--executions-per-trial", type=int, default=t.executions_per_trial, metavar="N", help="(default: %(default)s)")
    p.add_argument("--patience", type=int, default=t.patience, metavar="N", help="EarlyStopping patience in epochs (default: %(default)s)")
    p.add_argument("--seed", type=int, default=t.seed, metavar="N", help="(default: %(default)s)")
    p.add_argument("--lr-min", type=float, default=t.lr_min, metavar="LR", help="(default: %(default)s)")
    p.add_argument("--lr-max", type=float, default=t.lr_max, metavar="LR", help="(default: %(default)s)")
    p.add_argument("--width-min", type=int, default=t.width_min, metavar="N", help="(default: %(default)s)")
    p.add_argument("--width-max", type=int, default=t.width_max, metavar="N", help="(default: %(default)s; step 32)")
    p.add_argument("--search", action="append", default=[], metavar="NAME",
                   help=f"also search {' or '.join(SEARCHABLE)} (repeat or comma-separate)")
    p.add_argument("--depth", type=int, default=t.depth, metavar="N", help="fixed unless searched (default: %(default)s)")
    p.add_argument("--activation", default=t.activation, metavar="NAME", help="(default: %(default)s)")
    p.add_argument("--init", default=t.init, metavar="NAME", help="(default: %(default)s)")
    p.add_argument("--batch-size", type=int, default=t.batch_size, metavar="N", help="fixed unless searched (default: %(default)s)")
    p.add_argument("--jit-compile", default=t.jit_compile, metavar="MODE", help="(default: %(default)s)")
    p.add_argument("--directory", default=t.directory, metavar="DIR", help="(default: %(default)s)")
    p.add_argument("--project-name", default=t.project_name, metavar="NAME", help="(default: %(default)s)")
    p.add_argument("--overwrite", action="store_true", help="delete the project's trials and start over")
    p.add_argument("--export-dir", default=t.export_dir, metavar="DIR", help="where the best model is exported (default: %(default)s)")
    p.add_argument("--no-export", dest="export_dir", action="store_const", const=None, help="do not export the best model")
    p.add_argument("--summary", action="store_true", help="print the table of an existing search and stop")
    p.add_argument("--verbose", type=int, choices=(0, 1, 2), help="Keras progress output")
    p.set_defaults(handler=_tune)


def _add_compare(p: argparse.ArgumentParser) -> None:
    c = _COMPARE
    _add_data_flags(p)
    p.add_argument("--activations", default=",".join(c.activations), metavar="LIST",
                   help=f"comma-separated, from {', '.join(ACTIVATIONS)} (default: %(default)s)")
    p.add_argument("--depths", default=",".join(map(str, c.depths)), metavar="LIST",
                   help="comma-separated hidden-layer counts, e.g. 2,6 (default: %(default)s)")
    p.add_argument("--out", metavar="DIR", help="output folder (default: runs/compare-<timestamp>)")
    p.add_argument("--train-split", default=c.train_split, metavar="SPLIT", help="(default: %(default)s)")
    p.add_argument("--val-split", default=c.val_split, metavar="SPLIT", help="(default: %(default)s)")
    p.add_argument("--test-split", default=c.test_split, metavar="SPLIT", help="(default: %(default)s)")
    p.add_argument("--width", type=int, default=c.width, metavar="N", help="(default: %(default)s)")
    p.add_argument("--init", default=c.init, metavar="NAME", help="(default: %(default)s)")
    p.add_argument("--lr", "--learning-rate", dest="learning_rate", type=float, default=c.learning_rate, metavar="LR", help="(default: %(default)s)")
    p.add_argument("--batch-size", type=int, default=c.batch_size, metavar="N", help="(default: %(default)s)")
    p.add_argument("--epochs", type=int, default=c.epochs, metavar="N", help="(default: %(default)s)")
    p.add_argument("--seed", type=int, default=c.seed, metavar="N", help="(default: %(default)s)")
    p.add_argument("--jit-compile", default=c.jit_compile, metavar="MODE", help="(default: %(default)s)")
    p.add_argument("--verbose", type=int, choices=(0, 1, 2), help="Keras progress output")
    p.set_defaults(handler=_compare)


def _add_export(p: argparse.ArgumentParser) -> None:
    p.add_argument("--model", required=True, metavar="PATH", help="a .keras file or a run dir (uses its best.keras)")
    p.add_argument("--out", default="saved_models/relunet", metavar="DIR", help="folder of versions (default: %(default)s)")
    p.add_argument("--version", type=int, metavar="N", help="version number (default: the next free one)")
    p.set_defaults(handler=_export)


def _add_predict(p: argparse.ArgumentParser) -> None:
    p.add_argument("--model", required=True, metavar="PATH", help="a .keras file, run dir, SavedModel or folder of versions")
    p.add_argument("inputs", nargs="+", metavar="FILE", help="PNG/JPEG/GIF/BMP images or .npy arrays")
    p.add_argument("--json", action="store_true", help="print JSON instead of one line per input")
    _add_trust_flag(p)
    p.set_defaults(handler=_predict)


def _add_evaluate(p: argparse.ArgumentParser) -> None:
    _add_data_flags(p)
    p.add_argument("--model", required=True, metavar="PATH", help="a .keras file, run dir, SavedModel or folder of versions")
    p.add_argument("--split", default=_DEFAULTS.test_split, metavar="SPLIT", help="tfds split (default: %(default)s)")
    p.add_argument("--batch-size", type=int, default=1024, metavar="N", help="(default: %(default)s)")
    p.add_argument("--json", action="store_true", help="print JSON")
    _add_trust_flag(p)
    p.set_defaults(handler=_evaluate)


def _add_trust_flag(p: argparse.ArgumentParser) -> None:
    p.add_argument("--trust-model", action="store_true",
                   help="run a SavedModel even if its signature uses ops relunet's exports never "
                        "do (file or network access, Python code): only for models you trust")


def _train(args: argparse.Namespace) -> int:
    fields = {f.name for f in dataclasses.fields(TrainConfig)}
    config = TrainConfig(**{k: v for k, v in vars(args).items() if k in fields}).validate()
    _check_folder(config.data_dir, "data dir")
    check_output_dir(config.with_run_dir().run_dir, "run dir")
    import_tensorflow_quietly()
    from relunet.train import Preempted, TrainingDiverged, WorkerLost, train

    try:
        train(config)
    except TrainingDiverged as error:
        print(f"relunet: {error}", file=sys.stderr)
        return 1
    except Preempted as error:
        print(f"relunet train: interrupted: {error}; rerun the same command to resume",
              file=sys.stderr)
        return PREEMPTED
    except WorkerLost as error:
        print(f"relunet train: {error}", file=sys.stderr)
        return PREEMPTED
    return 0


def _tune(args: argparse.Namespace) -> int:
    fields = {f.name for f in dataclasses.fields(TuneConfig)}
    values = {k: v for k, v in vars(args).items() if k in fields}
    values["search"] = tuple(dict.fromkeys(n.strip() for s in args.search for n in s.split(",") if n.strip()))
    config = TuneConfig(**values).validate()
    from relunet import trials

    if config.summary:
        trials.summarize(trials.project_dir(config))
        return 0
    check_output_dir(config.directory, "tuning directory")
    if config.export_dir:
        check_output_dir(config.export_dir, "export target")
    trials.check_search_space(config)
    _check_folder(config.data_dir, "data dir")
    import_tensorflow_quietly()
    from relunet.tune import TuningFailed, tune

    try:
        tune(config)
    except TuningFailed as error:
        print(f"relunet: {error}", file=sys.stderr)
        return 1
    return 0


def _compare(args: argparse.Namespace) -> int:
    fields = {f.name for f in dataclasses.fields(CompareConfig)}
    values = {k: v for k, v in vars(args).items() if k in fields}
    values["activations"] = _split_list(args.activations, str, "activations")
    values["depths"] = _split_list(args.depths, int, "depths")
    config = CompareConfig(**values).validate().with_out()
    _check_folder(config.data_dir, "data dir")
    check_output_dir(config.out, "output folder")
    out = Path(config.out)
    if out.exists() and any(out.iterdir()):
        raise RelunetError(f"The output folder {out} already holds something; pick a new --out.")
    import_tensorflow_quietly()
    from relunet.compare import compare

    compare(config)
    return 0


def _split_list(text: str, kind: type, what: str) -> tuple:
    try:
        return tuple(kind(item.strip()) for item in text.split(",") if item.strip())
    except ValueError:
        raise RelunetError(f"{what} must be a comma-separated list of {kind.__name__} values. "
                           f"Received: {text!r}.") from None


def _export(args: argparse.Namespace) -> int:
    model_path = resolve_model_path(args.model)
    if model_path.suffix != ".keras":
        raise RelunetError(f"{model_path} is not a .keras model file (or a run dir holding best.keras).")
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
    import_tensorflow_quietly()
    from relunet.inference import load_classifier, read_inputs

    inputs = read_inputs(args.inputs)
    classifier = load_classifier(args.model, trust_model=args.trust_model)
    import numpy as np

    probabilities = classifier.probabilities(np.stack([image for _, image in inputs]))
    results = [{"input": name, "class": int(p.argmax()), "probability": round(float(p.max()), 6),
                "probabilities": [round(float(x), 6) for x in p]}
               for (name, _), p in zip(inputs, probabilities)]
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
    _check_folder(args.data_dir, "data dir")
    resolve_model_path(args.model)
    import_tensorflow_quietly()
    from relunet import data
    from relunet.inference import evaluate, load_classifier

    classifier = load_classifier(args.model, trust_model=args.trust_model)
    source = data.find_source(args.dataset, args.data_dir, args.tfds_dir, verbose=not args.json)
    (split,) = data.load_tfds(source, [args.split])
    result = evaluate(classifier, split, args.batch_size)
    result.update(model=str(classifier.path), dataset=args.dataset, split=args.split)
    if args.json:
        print(json.dumps(result, indent=2))
    else:
        print(f"{args.dataset} {args.split}: accuracy {result['accuracy']:.4f}, "
              f"loss {result['loss']:.4f} ({result['examples']} images, {classifier.path})")
    return 0


def _apply_preset(argv: list[str] | None, preset: str) -> argparse.Namespace:
    """Parse again with the preset's values as defaults, so explicit flags still win."""
    return build_parser(PRESETS[preset]).parse_args(argv)


def _check_folder(path: str | None, what: str) -> None:
    if path and not Path(path).is_dir():
        raise RelunetError(f"The {what} {path} does not exist or is not a folder.")


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    if getattr(args, "preset", None):
        args = _apply_preset(argv, args.preset)
    try:
        return args.handler(args)
    except RelunetError as error:
        message = " ".join(str(error).split())
        print(f"relunet {args.command}: error: {message}", file=sys.stderr)
        return 2
    except OSError as error:  # a full disk, a folder made read-only under a running job
        where = f": {error.filename}" if error.filename else ""
        print(f"relunet {args.command}: error: {error.strerror or error}{where}. Nothing "
              "half-written was left; fix that and run the command again.", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print(f"relunet {args.command}: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
