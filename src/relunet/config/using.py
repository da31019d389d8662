"""The configs of the commands that use a trained model: export, predict, evaluate, serve.

Each holds exactly the flags its command honours (the command line is made from these
fields, as for training) and checks its values; the checks of paths and files are
`relunet.preflight`'s.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from typing import ClassVar

from relunet.base.errors import RelunetError
from relunet.base.values import (
    check_choice,
    check_count,
    check_port,
    check_split,
    check_whole_from_zero,
)
from relunet.config.fields import (
    MAX_THREADS,
    SourceConfig,
    check_numbers,
    field_defaults,
    option,
)

TRUST_HELP = (
    "run a SavedModel even if its signature uses ops relunet's exports never do (file or "
    "network access, Python code): only for models you trust"
)
ANY_MODEL = "a .keras file, run dir, SavedModel or folder of versions"


@dataclass
class ExportConfig:
    """`relunet export`: a .keras model as the next SavedModel version for TF Serving."""

    model: str = option(
        None, "a .keras file or a run dir (uses its best.keras)", required=True, metavar="PATH"
    )
    out: str = option("saved_models/relunet", "folder of versions", metavar="DIR")
    version: int | None = option(None, "version number (default: the next free one)", metavar="N")

    def validate(self) -> ExportConfig:
        if self.version is not None:
            check_count("version", self.version)
        return self


@dataclass
class PredictConfig:
    """`relunet predict`: classify image files or .npy arrays."""

    inputs: tuple[str, ...] = option(
        (),
        "PNG/JPEG/GIF/BMP/WebP images (an animated GIF: its first frame) or .npy arrays",
        positional=True,
        metavar="FILE",
    )
    model: str = option(None, ANY_MODEL, required=True, metavar="PATH")
    json: bool = option(False, "print JSON instead of one line per input")
    trust_model: bool = option(False, TRUST_HELP)

    def validate(self) -> PredictConfig:
        if isinstance(self.inputs, str | os.PathLike):  # not each of its characters
            raise RelunetError(
                f"inputs is one path ({os.fspath(self.inputs)!r}), not a list of them: "
                "inputs=[path]."
            )
        if not self.inputs:
            raise RelunetError("predict needs at least one input file.")
        if not all(isinstance(name, str | os.PathLike) for name in self.inputs):
            raise RelunetError(f"inputs must be paths (str or Path); received {self.inputs!r:.80}.")
        return self


@dataclass
class EvaluateConfig(SourceConfig):
    """`relunet evaluate`: how well a model reads, on a split or on a folder of labelled
    image files, with an optional report of where it goes wrong."""

    model: str = option(None, ANY_MODEL, required=True, metavar="PATH")
    split: str = option("test", "tfds split", metavar="SPLIT")
    images: str | None = option(
        None,
        "evaluate image files instead of a split: a folder of subfolders of PNG, JPEG, GIF, "
        "BMP or WebP files, each subfolder named after what its images should read: a digit "
        "0 to 9 (the layout of keras.utils.image_dataset_from_directory), a number (42, "
        "2026, 3.14, -5) or none; each file read as predict reads it",
        metavar="DIR",
    )
    json: bool = option(False, "print JSON")
    report: str | None = option(
        None,
        "also write a report into DIR: confusion matrix (PNG, CSV), per-class precision, "
        "recall and F1 (table, JSON), the most confident mistakes (PNG)",
        metavar="DIR",
    )
    trust_model: bool = option(False, TRUST_HELP)

    def validate(self) -> EvaluateConfig:
        self.check_source()
        check_split(self.split, "split")
        if self.images is not None:  # then the dataset's flags would be ignored
            defaults = field_defaults(EvaluateConfig)
            for name in ("dataset", "data_dir", "tfds_dir", "split"):
                if getattr(self, name) != defaults[name]:
                    raise RelunetError(
                        f"images evaluates the files in its folder, so {name} would be "
                        f"ignored; give one or the other. Received: {name}="
                        f"{getattr(self, name)!r}."
                    )
        return self


@dataclass
class ServeConfig:
    """`relunet serve`: TF Serving's REST API over a folder of versions, and a drawing page."""

    # Batching's defaults, when --enable-batching is true (the default), measured in
    # benchmarks/README.md: a serving_bytes call costs 0.6 ms for one image, 0.045 ms an
    # image at 128 and no less at 256 (bench_serve.py --calls), so batches of up to 128
    # images (TF Serving's advice for CPUs: a high max batch); no wait, so a lone
    # request never waits and a busy server batches what queued meanwhile; a batch
    # thread per core.
    MAX_BATCH_SIZE: ClassVar[int] = 128
    BATCH_TIMEOUT_MICROS: ClassVar[int] = 0
    MAX_BATCH_TIMEOUT_MICROS: ClassVar[int] = 10_000_000  # 10 s: longer is a typo

    model_dir: str = option(
        None,
        "a folder of numbered SavedModel versions, as relunet export writes",
        positional=True,
        metavar="MODEL_DIR",
    )
    name: str = option("relunet", "the model's name in the URLs")
    host: str = option("127.0.0.1", "address to listen on; 127.0.0.1 is this machine only")
    port: int = option(8501, "TF Serving's REST port")
    max_body_bytes: int = option(
        8 << 20,
        "larger requests are refused with 413; 8 MiB holds about 22,000 MNIST digits as b64 "
        "PNGs or 1,990 as JSON pixel lists",
    )
    max_request_head_bytes: int = option(
        32 << 10,
        "a request line, header or whole head (everything before the body) longer than "
        "this is refused with 414 (the line) or 431 and the connection closed; 32 KiB is "
        "nginx's default total, twice uvicorn's h11 limit",
    )
    labels: tuple[str, ...] = option(
        (),
        "name a version, as TF Serving's version labels: /v1/models/NAME/labels/LABEL; "
        "repeat the flag for more (default: none)",
        flags=("--label",),
        metavar="LABEL=VERSION",
    )
    enable_batching: str = option(
        "true",
        "run concurrent :predict requests to one signature as one model call",
        choices=("true", "false"),
        metavar="true|false",
    )
    max_batch_size: int | None = option(
        None, f"most images in one batched call (default: {MAX_BATCH_SIZE})"
    )
    batch_timeout_micros: int | None = option(
        None,
        "how long a batch that is not full waits for more requests, in microseconds "
        f"(default: {BATCH_TIMEOUT_MICROS}, no wait)",
    )
    num_batch_threads: int | None = option(
        None, "batches run at the same time (default: one per core)"
    )
    tensorflow_intra_op_parallelism: int = option(
        1,
        "threads one TensorFlow op may use, as TF Serving's flag (0: TensorFlow's choice, "
        "one per core); 1 serves photos and digits fastest, as concurrent requests and "
        "batches then share the cores (benchmarks/README.md)",
        metavar="N",
    )
    drain_seconds: float = option(
        30.0,
        "on SIGTERM, how long requests in flight may take to finish before the server "
        "stops anyway (a second SIGTERM stops it at once)",
        metavar="S",
        interval="[0, 3600]",
    )
    access_log: bool = option(
        False, "print one line per request on stdout: time, method, path, status, ms, images"
    )
    trust_model: bool = option(False, TRUST_HELP)

    def validate(self) -> ServeConfig:
        check_numbers(self)
        check_port("port", self.port)
        if not self.name or not all(c.isalnum() or c in "-_." for c in self.name):
            raise RelunetError(
                f"name must be letters, digits, '-', '_' or '.'. Received: {self.name!r}."
            )
        check_count("max_body_bytes", self.max_body_bytes)
        check_count("max_request_head_bytes", self.max_request_head_bytes)
        check_whole_from_zero(
            "tensorflow_intra_op_parallelism",
            self.tensorflow_intra_op_parallelism,
            MAX_THREADS,
            " (TensorFlow's choice)",
        )
        self.version_labels()
        check_choice("enable_batching", self.enable_batching, ("true", "false"))
        batching = ("max_batch_size", "batch_timeout_micros", "num_batch_threads")
        if self.enable_batching == "false":
            for name in batching:
                if getattr(self, name) is not None:
                    raise RelunetError(
                        f"{name} needs enable_batching true; batching is off. "
                        f"Received: {name}={getattr(self, name)!r}."
                    )
        if self.max_batch_size is not None:
            check_count("max_batch_size", self.max_batch_size)
        if self.num_batch_threads is not None:
            check_count("num_batch_threads", self.num_batch_threads, MAX_THREADS)
        if self.batch_timeout_micros is not None:
            check_whole_from_zero(
                "batch_timeout_micros", self.batch_timeout_micros, self.MAX_BATCH_TIMEOUT_MICROS
            )
        return self

    def version_labels(self) -> dict[str, int]:
        """--label stable=1 --label canary=2 as {"stable": 1, "canary": 2}."""
        found: dict[str, int] = {}
        for text in self.labels:
            label, equals, number = text.partition("=")
            if (
                not equals
                or not label
                or not all(c.isalnum() or c in "-_." for c in label)
                or not number.isdigit()
                or int(number) < 1
            ):
                raise RelunetError(
                    "label must be LABEL=VERSION, a name of letters, digits, '-', '_' or '.' "
                    f"and a version number, as stable=1. Received: {text!r}."
                )
            if label in found:
                raise RelunetError(f"label {label!r} names two versions. Received: {text!r}.")
            found[label] = int(number)
        return found
