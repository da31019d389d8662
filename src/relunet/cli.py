"""The `relunet` command line: its flags, and the way out (exit status, one line).

The flags of train, tune and compare are made from their config dataclasses' fields
(`relunet.config`): one declaration, one default, one help text each. What each
command does is in `relunet.commands`. Bad input ends with one line on stderr and
exit status 2.
"""

from __future__ import annotations

import argparse
import dataclasses
import os
import sys
from typing import Any

from relunet import __version__, commands
from relunet.config import PRESETS, CompareConfig, DataConfig, TrainConfig, TuneConfig
from relunet.errors import RelunetError
from relunet.quiet import filtered_stderr


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
    train = subparsers.add_parser("train", help="train (or resume) a model on MNIST")
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
    train.set_defaults(handler=commands.train)
    tune = subparsers.add_parser("tune", help="search learning rate and width with keras-tuner")
    add_config_flags(tune, TuneConfig)
    tune.set_defaults(handler=commands.tune)
    compare = subparsers.add_parser(
        "compare", help="ReLU vs sigmoid: train each activation and depth, plot gradient flow"
    )
    add_config_flags(compare, CompareConfig)
    compare.set_defaults(handler=commands.compare)
    _add_export(
        subparsers.add_parser("export", help="export a .keras model as a TF Serving SavedModel")
    )
    _add_predict(subparsers.add_parser("predict", help="classify image files or .npy arrays"))
    _add_evaluate(
        subparsers.add_parser("evaluate", help="report a model's loss and accuracy on a split")
    )
    _add_serve(
        subparsers.add_parser(
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
    p.set_defaults(handler=commands.export)


def _add_predict(p: argparse.ArgumentParser) -> None:
    _add_model_flag(p, "a .keras file, run dir, SavedModel or folder of versions")
    p.add_argument(
        "inputs", nargs="+", metavar="FILE", help="PNG/JPEG/GIF/BMP images or .npy arrays"
    )
    p.add_argument("--json", action="store_true", help="print JSON instead of one line per input")
    _add_trust_flag(p)
    p.set_defaults(handler=commands.predict)


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
    p.set_defaults(handler=commands.evaluate)


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
    p.set_defaults(handler=commands.serve)


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    if getattr(args, "preset", None):  # again, with the preset's values as the defaults
        args = build_parser(PRESETS[args.preset]).parse_args(argv)
    try:
        with filtered_stderr():
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
