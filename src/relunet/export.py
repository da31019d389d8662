"""Export a trained model as a SavedModel that TensorFlow Serving loads as-is.

Layout: `<out>/<version>/saved_model.pb`, integer versions, as TF Serving expects.
Two signatures, each returning `probabilities` [batch, 10] and `class` [batch]:

  serving_default  `images`: raw uint8 pixels [batch, 28, 28, 1], normalised inside,
                   so a client sends pixels and never needs the training pipeline;
  serving_bytes    `image_bytes`: encoded PNG/JPEG/GIF/BMP files [batch], decoded and
                   made into MNIST digits inside (`relunet.images`), so a TF Serving
                   REST client can post `{"b64": ...}` images.

A version is written to a hidden temporary folder and renamed into place: a crash
never leaves half a version.
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import keras
import tensorflow as tf

from relunet.checks import check_output_dir
from relunet.errors import RelunetError
from relunet.images import mnist_digits
from relunet.mnist import INPUT_SHAPE
from relunet.model import to_inputs

SIGNATURE = "serving_default"
BYTES_SIGNATURE = "serving_bytes"
_INCOMPLETE = ".incomplete-"


def export_saved_model(
    model: keras.Model, out: str | os.PathLike, version: int | None = None, verbose: bool = True
) -> Path:
    """Write `model` as `<out>/<version>` (next free version by default); return that path."""
    out = Path(out)
    check_output_dir(out, "export target")
    version = next_version(out) if version is None else _check_version(out, version)
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


def next_version(out: Path) -> int:
    """One more than the highest integer-named folder in `out`, or 1."""
    versions = [int(p.name) for p in out.iterdir() if p.name.isdigit()] if out.is_dir() else []
    return max(versions, default=0) + 1


def _check_version(out: Path, version: int) -> int:
    if version < 1:
        raise RelunetError(f"version must be a positive integer. Received: {version}.")
    if (out / str(version)).exists():
        raise RelunetError(f"{out / str(version)} already exists; refusing to overwrite it.")
    return version


def _archive(model: keras.Model) -> keras.export.ExportArchive:
    archive = keras.export.ExportArchive()
    archive.track(model)

    def classify(images):
        probabilities = tf.nn.softmax(model(to_inputs(images), training=False), axis=-1)
        return {"probabilities": probabilities, "class": tf.argmax(probabilities, axis=-1)}

    @tf.function(input_signature=[tf.TensorSpec([None, *INPUT_SHAPE], tf.uint8, name="images")])
    def serve(images):
        return classify(images)

    @tf.function(input_signature=[tf.TensorSpec([None], tf.string, name="image_bytes")])
    def serve_bytes(image_bytes):
        return classify(mnist_digits(image_bytes))

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
