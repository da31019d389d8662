"""The `relunet` command line: its flags, and the way out (exit status, one line).

Every command's flags are made from its config dataclass's fields (`relunet.config`):
one declaration, one default, one help text each, and no flag the command would
ignore. What each command does is in `relunet.commands`. Bad input ends with one line
on stderr and exit status 2.
"""

from __future__ import annotations

import argparse
import dataclasses
import os
import sys
from typing import Any

from relunet import __version__, commands
from relunet.base.errors import Preempted, RelunetError, TrainingDiverged, TuningFailed, WorkerLost
from relunet.base.quiet import filtered_stderr
from relunet.config import (
    PRESETS,
    CompareConfig,
    EvaluateConfig,
    ExportConfig,
    PredictConfig,
    ServeConfig,
    TrainConfig,
    TuneConfig,
    field_kinds,
    flags_of,
)

# name: (config, what the command does, its one-line help)
COMMANDS = {
    "train": (TrainConfig, commands.train, "train (or resume) a model on MNIST"),
    "tune": (TuneConfig, commands.tune, "search learning rate and width with keras-tuner"),
    "compare": (
        CompareConfig,
        commands.compare,
        "networks side by side over seeds (a grid of layer settings, or --series lab10): "
        "accuracy, spread and gradient flow",
    ),
    "export": (ExportConfig, commands.export, "export a .keras model as a TF Serving SavedModel"),
    "predict": (PredictConfig, commands.predict, "classify image files or .npy arrays"),
    "evaluate": (
        EvaluateConfig,
        commands.evaluate,
        "score how a model reads, on a split or a folder of labelled images, with a report",
    ),
    "serve": (
        ServeConfig,
        commands.serve,
        "serve SavedModel versions over TF Serving's REST API, with a page to draw digits on",
    ),
}


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
    subparsers = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for name, (config, handler, help_text) in COMMANDS.items():
        sub = subparsers.add_parser(name, help=help_text)
        add_config_flags(sub, config, train_defaults if name == "train" else None)
        sub.set_defaults(config=config, handler=handler)
        if name == "train":
            sub.add_argument("--preset", choices=sorted(PRESETS), help=_presets_help())
    return parser


def _presets_help() -> str:
    described = (
        f"{name}: {', '.join(f'{k}={v}' for k, v in values.items()) or 'the defaults'}"
        for name, values in PRESETS.items()
    )
    return "start from a preset: " + "; ".join(described) + "; explicit flags override it"


_METAVARS = {int: "N", float: "X", str: "NAME"}


def add_config_flags(
    parser: argparse.ArgumentParser, config: type, defaults: dict[str, Any] | None = None
) -> None:
    """One flag per field of the config dataclass: --name (or its `flags`, or a positional
    argument), its type, its default (or `defaults`' value) and its help."""
    kinds = field_kinds(config)
    for field in dataclasses.fields(config):
        meta = field.metadata
        kind, is_list = kinds[field.name]
        default = (defaults or {}).get(field.name, field.default)
        help_text = meta["help"]
        if "choices" in meta:
            help_text += f"; one of {', '.join(map(str, meta['choices']))}"
        if "interval" in meta:
            help_text += f"; in {meta['interval']}"
        if meta.get("positional"):
            nargs = "+" if is_list else None
            parser.add_argument(field.name, nargs=nargs, metavar=meta["metavar"], help=help_text)
            continue
        names = flags_of(field)
        if kind is bool:
            parser.add_argument(
                *names, dest=field.name, action="store_true", default=default, help=help_text
            )
            continue
        if default is not None and "(default" not in help_text:
            shown = ",".join(map(str, default)) if isinstance(default, tuple) else default
            help_text += f" (default: {shown})".replace("%", "%%")
        if is_list:  # comma-separated, and the flag may repeat
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
            type=kind,
            default=default,
            required=meta.get("required", False),
            metavar=meta.get("metavar", _METAVARS[kind]),
            help=help_text,
        )


def config_from_args(config: type, args: argparse.Namespace) -> Any:
    """The config dataclass filled from parsed flags; lists parsed from their commas, each
    item as its field's annotation says (`tuple[float, ...]`: floats). A positional list
    (predict's files) is every argument as given, in order: a name may hold a comma, and
    a file named twice is read twice."""
    kinds = field_kinds(config)
    values = {}
    for field in dataclasses.fields(config):
        value = getattr(args, field.name)
        kind, is_list = kinds[field.name]
        positional = field.metadata.get("positional")
        texts = value if is_list and not positional and value is not None else [value]
        strip = ", " if is_list else None  # `--out ''`, `--label ''`, `--label ,`
        if any(isinstance(t, str) and not t.strip(strip) for t in texts):
            if positional:
                raise RelunetError(f"{field.metadata['metavar']} is empty; give it a value.")
            raise RelunetError(f"{flags_of(field)[0]} is empty; give it a value, or leave it out.")
        if is_list and positional:
            value = field.default if value is None else tuple(map(kind, value))
        elif is_list:
            value = field.default if value is None else _parse_list(value, kind, field.name)
        values[field.name] = value
    return config(**values)


def _parse_list(texts: list[str], kind: type, what: str) -> tuple:
    """Comma-separated items as `kind`, each value once (0.5 and .5 are one value)."""
    items = [item.strip() for text in texts for item in text.split(",") if item.strip()]
    try:
        return tuple(dict.fromkeys(kind(item) for item in items))
    except ValueError:
        raise RelunetError(
            f"{what} must be a comma-separated list of {kind.__name__} values. "
            f"Received: {','.join(texts)!r}."
        ) from None


PIPE_CLOSED = 128 + 13  # what a shell reports of a command ended by SIGPIPE: quietly


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    if getattr(args, "preset", None):  # again, with the preset's values as the defaults
        args = build_parser(PRESETS[args.preset]).parse_args(argv)
    command = f"relunet {args.command}"
    try:
        with filtered_stderr():
            return args.handler(config_from_args(args.config, args))
    except RelunetError as error:
        message = " ".join(str(error).split())
        print(f"{command}: error: {message}", file=sys.stderr)
        return 2
    except BrokenPipeError:  # `relunet predict --json ... | head`: the reader has gone
        return PIPE_CLOSED
    except OSError as error:  # a full disk, a folder made read-only under a running job
        where = f": {error.filename}" if error.filename else ""
        print(
            f"{command}: error: {error.strerror or error}{where}. Nothing "
            "half-written was left; fix that and run the command again.",
            file=sys.stderr,
        )
        return 2
    except (TrainingDiverged, TuningFailed) as error:
        print(f"relunet: {error}", file=sys.stderr)
        return 1
    except Preempted as error:
        print(f"{command}: interrupted: {error}; rerun the same command to resume", file=sys.stderr)
        return commands.PREEMPTED
    except WorkerLost as error:
        print(f"{command}: {error}", file=sys.stderr)
        return commands.PREEMPTED
    except KeyboardInterrupt:
        print(f"{command}: interrupted", file=sys.stderr)
        return 130


def entry() -> None:
    """The `relunet` command: main(), then out at once. The results are written and
    fsynced by then; the interpreter's teardown of TensorFlow would only cost seconds."""
    code = main()
    try:
        sys.stdout.flush()
    except BrokenPipeError:
        code = PIPE_CLOSED
    sys.stderr.flush()
    os._exit(code)


if __name__ == "__main__":
    entry()
