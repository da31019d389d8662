"""The configs of the commands that use a trained model: export, predict, evaluate, serve.

Each holds exactly the flags its command honours (the command line is made from these
fields, as for training) and checks its values; the checks of paths and files are
`relunet.preflight`'s.
"""

from __future__ import annotations

from dataclasses import dataclass

from relunet.config.fields import SourceConfig, field_defaults, option
from relunet.errors import RelunetError
from relunet.values import check_count, check_port, check_split

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
        (), "PNG/JPEG/GIF/BMP images or .npy arrays", positional=True, metavar="FILE"
    )
    model: str = option(None, ANY_MODEL, required=True, metavar="PATH")
    json: bool = option(False, "print JSON instead of one line per input")
    trust_model: bool = option(False, TRUST_HELP)

    def validate(self) -> PredictConfig:
        if not self.inputs:
            raise RelunetError("predict needs at least one input file.")
        return self


@dataclass
class EvaluateConfig(SourceConfig):
    """`relunet evaluate`: loss and accuracy of a model on a split, with an optional report."""

    model: str = option(None, ANY_MODEL, required=True, metavar="PATH")
    split: str = option("test", "tfds split", metavar="SPLIT")
    images: str | None = option(
        None,
        "evaluate image files instead of a split: a folder with subfolders 0 to 9 of PNG, "
        "JPEG, GIF or BMP files (the layout of keras.utils.image_dataset_from_directory), "
        "each made into an MNIST digit as predict makes it",
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

    model_dir: str = option(
        None,
        "a folder of numbered SavedModel versions, as relunet export writes",
        positional=True,
        metavar="MODEL_DIR",
    )
    name: str = option("relunet", "the model's name in the URLs")
    host: str = option("127.0.0.1", "address to listen on; 127.0.0.1 is this machine only")
    port: int = option(8501, "TF Serving's REST port")
    max_body_bytes: int = option(8 << 20, "larger requests are refused with 413")
    trust_model: bool = option(False, TRUST_HELP)

    def validate(self) -> ServeConfig:
        check_port("port", self.port)
        if not self.name or not all(c.isalnum() or c in "-_." for c in self.name):
            raise RelunetError(
                f"name must be letters, digits, '-', '_' or '.'. Received: {self.name!r}."
            )
        check_count("max_body_bytes", self.max_body_bytes)
        return self
