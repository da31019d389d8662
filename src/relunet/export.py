"""Export a trained model as a SavedModel that TensorFlow Serving loads as-is.

Layout: `<out>/<version>/saved_model.pb`, integer versions, as TF Serving expects.
Two signatures, each returning `probabilities` [batch, 10] and `class` [batch]:

  serving_default  `images`: raw uint8 pixels [batch, 28, 28, 1], normalised inside,
                   so a client sends pixels and never needs the training pipeline;
  serving_bytes    `image_bytes`: encoded PNG/JPEG/GIF/BMP files [batch], decoded and
                   made into MNIST digits inside (`relunet.images`), so a TF Serving
                   REST client can post `{"b64": ...}` images; it also returns
                   `digit_found` [batch], false for an image with no digit in it (a
                   blank page), whose `class` is then -1.

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
from relunet.classifier import load_classifier
from relunet.config import ExportConfig
from relunet.data import to_inputs
from relunet.images import mnist_digits
from relunet.mnist import INPUT_SHAPE
from relunet.signatures import (
    BYTES_SIGNATURE,
    CLASS,
    DIGIT_FOUND,
    IMAGE_BYTES,
    IMAGES,
    PROBABILITIES,
    SIGNATURE,
)

_INCOMPLETE = ".incomplete-"


def export(config: ExportConfig) -> Path:
    """`relunet export`: the config's .keras model (or run dir) as a new version; return
    its folder. RelunetError for bad input (relunet.preflight.export's checks)."""
    return run(preflight.export(config))


def run(config: ExportConfig) -> Path:
    """`export` for a config that has passed `relunet.preflight.export`."""
    model = load_classifier(config.model).keras_model
    return write_version(model, Path(config.out), config.version)


def export_saved_model(
    model: keras.Model, out: str | os.PathLike, version: int | None = None, verbose: bool = True
) -> Path:
    """Write `model` as `<out>/<version>` (next free version by default); return that path.
    RelunetError if `out` cannot be written or the version exists."""
    out, version = preflight.export_target(out, version)
    return write_version(model, out, version, verbose)


def write_version(model: keras.Model, out: Path, version: int, verbose: bool = True) -> Path:
    """Write `model` as `<out>/<version>`, atomically: a crash never leaves half a version."""
    archive = _archive(model)  # traced here: a model that does not fit fails before any write
    created = not out.exists()
    out.mkdir(parents=True, exist_ok=True)
    _remove_stale_temporaries(out)
    final, tmp = out / str(version), out / f"{_INCOMPLETE}{version}-{os.getpid()}"
    try:
        archive.write_out(str(tmp), verbose=False)
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


def _archive(model: keras.Model) -> keras.export.ExportArchive:
    archive = keras.export.ExportArchive()
    archive.track(model)

    def classify(images):
        probabilities = tf.nn.softmax(model(to_inputs(images), training=False), axis=-1)
        return {PROBABILITIES: probabilities, CLASS: tf.argmax(probabilities, axis=-1)}

    @tf.function(input_signature=[tf.TensorSpec([None, *INPUT_SHAPE], tf.uint8, name=IMAGES)])
    def serve(images):
        return classify(images)

    @tf.function(input_signature=[tf.TensorSpec([None], tf.string, name=IMAGE_BYTES)])
    def serve_bytes(image_bytes):
        digits, found = mnist_digits(image_bytes)
        answer = classify(digits)
        # An image with no digit in it (a blank page) has no class: -1, and digit_found says so.
        no_class = tf.constant(-1, answer[CLASS].dtype)
        return {**answer, CLASS: tf.where(found, answer[CLASS], no_class), DIGIT_FOUND: found}

    archive.add_endpoint(SIGNATURE, serve)
    archive.add_endpoint(BYTES_SIGNATURE, serve_bytes)
    return archive


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
