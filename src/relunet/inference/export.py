"""Export a trained model as a SavedModel that TensorFlow Serving loads as-is.

Layout: `<out>/<version>/saved_model.pb`, integer versions, as TF Serving expects. Two
signatures, each returning calibrated `probabilities` [batch, 10], `class` [batch] and
`not_a_digit` [batch] (relunet.training.model.calibrated: a digit under the model's
threshold is not read, and its class is -1):

  serving_default  `images`: raw uint8 pixels [batch, 28, 28, 1], one digit each,
                   normalised inside, so a client sends pixels and never needs the
                   training pipeline;
  serving_bytes    `image_bytes`: encoded PNG/JPEG/GIF/BMP/WebP files [batch], each read as
                   a row of digits inside (`relunet.reading.digits`, one to MAX_DIGITS
                   of them, each made an MNIST digit), so a TF Serving REST client can
                   post `{"b64": ...}` images; it also returns the number read and each
                   digit's class, probability and box (`relunet.inference.answers`), and
                   `digit_found`, false for a blank page;
  serving_rows     (with a finder) `rows`: one row of writing [1, 28, w] as the reader
                   makes it (relunet.imaging.rows) -> `centres` [k] and `kinds` [k] of
                   the items the finder sees on it (relunet.training.finder): what
                   `relunet predict` reads an export's images with, as serving_bytes
                   does inside.

A version is written to a hidden temporary folder and renamed into place: a crash
never leaves half a version.
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import keras
import tensorflow as tf

from relunet import preflight
from relunet.base.mnist import INPUT_SHAPE
from relunet.base.signatures import (
    BYTES_SIGNATURE,
    CENTRES,
    CLASS,
    IMAGE_BYTES,
    IMAGES,
    KINDS,
    NOT_A_DIGIT,
    PROBABILITIES,
    ROWS,
    ROWS_SIGNATURE,
    SIGNATURE,
)
from relunet.config import ExportConfig
from relunet.data.pipelines import to_inputs
from relunet.imaging.rows import ROW_HEIGHT
from relunet.inference.answers import classify_slots, serving_outputs
from relunet.inference.classifier import finder_find, load_classifier
from relunet.reading.digits import read_batch
from relunet.training.model import calibrated

_INCOMPLETE = ".incomplete-"


def export(config: ExportConfig) -> Path:
    """`relunet export`: the config's .keras model (or run dir) as a new version; return
    its folder. RelunetError for bad input (relunet.preflight.export's checks)."""
    return run(preflight.export(config))


def run(config: ExportConfig) -> Path:
    """`export` for a config that has passed `relunet.preflight.export`: the model and,
    from a run dir that has one, its finder."""
    loaded = load_classifier(config.model)
    return write_version(loaded.keras_model, Path(config.out), config.version, finder=loaded.finder)


def export_saved_model(
    model: keras.Model,
    out: str | os.PathLike,
    version: int | None = None,
    verbose: bool = True,
    finder: keras.Model | None = None,
) -> Path:
    """Write `model` (and `finder`, which reads where a row's digits are) as
    `<out>/<version>` (next free version by default); return that path. RelunetError if
    `out` cannot be written or the version exists."""
    out, version = preflight.export_target(out, version)
    return write_version(model, out, version, verbose, finder=finder)


def write_version(
    model: keras.Model,
    out: Path,
    version: int,
    verbose: bool = True,
    finder: keras.Model | None = None,
) -> Path:
    """Write `model` (with `finder`) as `<out>/<version>`, atomically: a crash never
    leaves half a version."""
    # Traced here: a model that does not fit fails before any write.
    signatures = {
        name: fn.get_concrete_function() for name, fn in _endpoints(model, finder).items()
    }
    created = not out.exists()
    out.mkdir(parents=True, exist_ok=True)
    _remove_stale_temporaries(out)
    final, tmp = out / str(version), out / f"{_INCOMPLETE}{version}-{os.getpid()}"
    try:
        tf.saved_model.save(_exportable(signatures), str(tmp), signatures=signatures)
        os.rename(tmp, final)  # atomic on one file system; refuses an existing version
    except BaseException:
        if created:  # leave no empty folder behind
            shutil.rmtree(out, ignore_errors=True)
        raise
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    if verbose:
        print(f"export: wrote SavedModel version {version} to {final}", flush=True)
    return final


def _exportable(signatures: dict[str, tf.types.experimental.ConcreteFunction]) -> tf.Module:
    """What a version holds: the signatures, each traced once, and the variables they read.

    `tf.saved_model.save` traces a `tf.function` again under its save context (a cache
    key of its own), so Keras's ExportArchive traced the reader twice and wrote both
    graphs. Saved as concrete functions, the reader is traced once and written once.
    """
    exportable = tf.Module()
    read = {id(v): v for fn in signatures.values() for v in fn.variables}
    exportable.variables_read = list(read.values())
    for name, fn in signatures.items():
        setattr(exportable, name, fn)  # callable as attributes too, as Keras wrote them
    return exportable


def _endpoints(
    model: keras.Model, finder: keras.Model | None
) -> dict[str, tf.types.experimental.GenericFunction]:
    """The signatures by name, written as traced (autograph=False: they hold no Python
    control flow on tensors, and autograph's conversion of the reader made an export 40%
    slower)."""
    find = finder_find(finder)
    endpoints = {}
    if finder is not None:

        @tf.function(
            input_signature=[tf.TensorSpec([1, ROW_HEIGHT, None], tf.float32, name=ROWS)],
            autograph=False,
        )
        def serve_rows(rows):
            centres, kinds = find(rows)
            return {CENTRES: centres, KINDS: kinds}

        endpoints[ROWS_SIGNATURE] = serve_rows

    def classify(images):
        """The calibrated softmax of uint8 digits [n, 28, 28, 1], and whether each stays
        under the threshold (relunet.training.model.calibrated)."""
        return calibrated(model, model(to_inputs(images), training=False))

    @tf.function(
        input_signature=[tf.TensorSpec([None, *INPUT_SHAPE], tf.uint8, name=IMAGES)],
        autograph=False,
    )
    def serve_pixels(images):
        probabilities, rejected = classify(images)
        best = tf.where(rejected, tf.constant(-1, tf.int64), tf.argmax(probabilities, axis=-1))
        return {PROBABILITIES: probabilities, CLASS: best, NOT_A_DIGIT: rejected}

    @tf.function(
        input_signature=[tf.TensorSpec([None], tf.string, name=IMAGE_BYTES)], autograph=False
    )
    def serve_bytes(image_bytes):
        read = read_batch(image_bytes, find)
        return serving_outputs(read, *classify_slots(read, classify))

    return {**endpoints, SIGNATURE: serve_pixels, BYTES_SIGNATURE: serve_bytes}


def _remove_stale_temporaries(out: Path) -> None:
    """Remove temporary folders left by exports whose process has died."""
    for tmp in out.glob(f"{_INCOMPLETE}*"):
        pid = tmp.name.rsplit("-", 1)[-1]
        if pid.isdigit() and not _alive(int(pid)):
            shutil.rmtree(tmp, ignore_errors=True)


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True
