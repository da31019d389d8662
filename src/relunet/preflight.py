"""One check per command, before any work: its config's values, then the paths it names.

Each function takes a command's config, raises RelunetError (one sentence, exit
status 2) naming the first problem, and returns the config with its defaults resolved
(a run dir, an output folder). Nothing here imports TensorFlow: the command line runs
these first and answers a typo in milliseconds; the library functions (`train.train`,
`tune.tune`, `compare.compare`, `export.export`) run the same function when called
from Python. Neither path checks twice.
"""

from __future__ import annotations

import dataclasses
import os
import time
from pathlib import Path

from relunet.base.errors import RelunetError
from relunet.base.paths import (
    check_folder,
    check_new_output_dir,
    check_output_dir,
    check_versions_folder,
    resolve_model_path,
)
from relunet.config import (
    CompareConfig,
    EvaluateConfig,
    ExportConfig,
    PredictConfig,
    ServeConfig,
    SourceConfig,
    TrainConfig,
    TuneConfig,
)
from relunet.data import sources
from relunet.experiments import trials
from relunet.inference.image_folders import labelled_image_files, one_digit
from relunet.inference.npy_inputs import read_npy_images
from relunet.serve.listen import listening_socket
from relunet.training.distribute.cluster import worker_task
from relunet.training.rundir import RunDir, with_run_dir


def train(config: TrainConfig) -> TrainConfig:
    """The flags, the data, and a run dir this configuration may train in."""
    config = with_run_dir(config.validate())
    check_data(config)
    check_output_dir(config.run_dir, "run dir")
    RunDir(config.run_dir).check(config)
    if config.strategy == "multiworker":
        worker_task()
    return config


def tune(config: TuneConfig) -> TuneConfig:
    """The flags, the folders, a search space that agrees with the project's, the data."""
    config.validate()
    if config.summary:
        return config
    check_output_dir(config.directory, "tuning directory")
    if config.export_dir:
        check_output_dir(config.export_dir, "export target")
    trials.check_search_space(config)
    check_data(config)
    return config


def compare(config: CompareConfig) -> CompareConfig:
    """The flags, the data, and an output folder that holds nothing yet."""
    config.validate()
    if not config.out:
        config = dataclasses.replace(config, out=f"runs/compare-{time.strftime('%Y%m%d-%H%M%S')}")
    check_data(config)
    check_new_output_dir(config.out, "output folder", "--out")
    return config


def export(config: ExportConfig) -> ExportConfig:
    """A .keras model to export, and a version folder that does not exist yet."""
    config.validate()
    model = Path(config.model)
    if not (model.is_file() and model.suffix != ".keras"):  # an image is no SavedModel
        model = resolve_model_path(model)
    if model.suffix != ".keras":
        raise RelunetError(f"{model} is not a .keras model file (or a run dir holding best.keras).")
    out, version = export_target(config.out, config.version)
    return dataclasses.replace(config, model=str(model), out=str(out), version=version)


def export_target(out: str | Path, version: int | None) -> tuple[Path, int]:
    """Where a new SavedModel version goes: `out` must be writable and the version (the
    next free one by default) must not exist."""
    out = Path(out)
    check_output_dir(out, "export target")
    if version is None:
        taken = [int(p.name) for p in out.iterdir() if p.name.isdigit()] if out.is_dir() else []
        return out, max(taken, default=0) + 1
    if (out / str(version)).exists():
        raise RelunetError(f"{out / str(version)} already exists; refusing to overwrite it.")
    return out, version


def predict(config: PredictConfig) -> PredictConfig:
    """A model, and input files that exist (.npy arrays read and checked)."""
    config.validate()
    resolve_model_path(config.model)
    for name in config.inputs:
        if not str(name).strip():
            raise RelunetError(f"An input is an empty name ({str(name)!r}), not a file.")
        if not Path(name).is_file():
            raise RelunetError(f"The input {name} does not exist or is not a file.")
        if Path(name).suffix.lower() == ".npy":
            read_npy_images(Path(name))
    return config


def evaluate(config: EvaluateConfig) -> EvaluateConfig:
    """The data (a split, or a folder of labelled images), a model, and a report folder
    that holds nothing yet."""
    config.validate()
    if config.images is None:
        check_data(config)
    else:
        labels = {label for _, label in labelled_image_files(config.images)}
        if config.report and not any(one_digit(label) for label in labels):
            raise RelunetError(
                f"--report covers the one-digit images (subfolders 0 to 9); {config.images} "
                f"has none (its subfolders: {', '.join(sorted(labels))})."
            )
    resolve_model_path(config.model)
    if config.report:
        check_new_output_dir(config.report, "report folder", "--report folder")
    return config


def serve(config: ServeConfig) -> ServeConfig:
    """The flags, a folder of SavedModel versions holding every labelled version, and the
    batching settings resolved (when batching is on)."""
    config.validate()
    listening_socket(config.host, config.port).close()  # bound again, for good, by serve
    versions = check_versions_folder(config.model_dir)
    for label, number in config.version_labels().items():
        if number not in versions:
            raise RelunetError(
                f"The label {label} names version {number}, which {config.model_dir} does "
                f"not hold (it holds {', '.join(map(str, versions))})."
            )
    if config.enable_batching == "false":
        return config
    return dataclasses.replace(
        config,
        max_batch_size=config.max_batch_size or config.MAX_BATCH_SIZE,
        batch_timeout_micros=(
            config.BATCH_TIMEOUT_MICROS
            if config.batch_timeout_micros is None
            else config.batch_timeout_micros
        ),
        num_batch_threads=config.num_batch_threads or os.cpu_count() or 1,
    )


def check_data(config: SourceConfig) -> None:
    """The data dir: a folder whose IDX files are whole, unless a prepared copy of them
    is at hand (checked without reading them again)."""
    check_folder(config.data_dir, "data dir")
    sources.check_idx_folder(config.dataset, config.data_dir, config.tfds_dir)
