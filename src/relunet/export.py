"""Export a trained model as a SavedModel that TensorFlow Serving loads as-is.

Layout: `<out>/<version>/saved_model.pb`, integer versions, as TF Serving expects.
The `serving_default` signature takes raw uint8 images [batch, 28, 28, 1], normalises
them inside, and returns `probabilities` [batch, 10] and `class` [batch], so a client
sends pixels and never has to know the training pipeline. A version is written to a
hidden temporary folder and renamed into place: a crash never leaves half a version.
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import keras
import tensorflow as tf

from relunet.checks import check_output_dir
from relunet.errors import RelunetError
from relunet.model import INPUT_SHAPE

SIGNATURE = "serving_default"
_INCOMPLETE = ".incomplete-"


def export_saved_model(model: keras.Model, out: str | os.PathLike,
                       version: int | None = None, verbose: bool = True) -> Path:
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

    @tf.function(input_signature=[tf.TensorSpec([None, *INPUT_SHAPE], tf.uint8, name="images")])
    def serve(images):
        pixels = tf.cast(images, tf.float32) / 255.0  # the training pipeline's normalisation
        probabilities = tf.nn.softmax(model(pixels, training=False), axis=-1)
        return {"probabilities": probabilities, "class": tf.argmax(probabilities, axis=-1)}

    archive.add_endpoint(SIGNATURE, serve)
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
