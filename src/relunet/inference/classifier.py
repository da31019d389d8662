"""Load a trained model from any path relunet writes, and check that it classifies digits.

A model path may be a `.keras` file, a run dir (its `best.keras`), a SavedModel
version folder (`saved_models/relunet/3`) or the folder of versions (the newest is
used, as TF Serving would). Either way the answer is a `Classifier`: uint8 images in,
class probabilities out, whatever kind of model is behind it; and, where the model
comes with a finder (a run dir's `finder.keras` beside its `best.keras`, an export's
`serving_rows`), the reader's `find`: where the digits of a row of writing are.
"""

from __future__ import annotations

import re
import zipfile
from dataclasses import dataclass
from pathlib import Path

import keras
import numpy as np
import tensorflow as tf

from relunet.base.errors import RelunetError
from relunet.base.mnist import INPUT_SHAPE, NUM_CLASSES
from relunet.base.paths import resolve_model_path
from relunet.base.signatures import (
    CENTRES,
    IMAGES,
    KINDS,
    NOT_A_DIGIT,
    PROBABILITIES,
    ROWS,
    ROWS_SIGNATURE,
    SIGNATURE,
)
from relunet.data.pipelines import to_inputs
from relunet.inference.trust import check_trusted
from relunet.reading.digits import Find
from relunet.training.finder import Finder, centres_of
from relunet.training.model import calibrated, load_model
from relunet.training.rundir import RunDir

BATCH = 1024  # images per call when classifying many: about 3 MB of float32 pixels


@dataclass
class Classifier:
    """Anything that maps uint8 digits [n, 28, 28, 1] to calibrated class probabilities
    [n, 10], and says which stay under its "not a digit" threshold."""

    path: Path
    keras_model: keras.Model | None = None
    signature: object | None = None  # the SavedModel's serving_default function
    saved_model: object | None = None  # keeps the loaded SavedModel (and its variables) alive
    finder: keras.Model | None = None  # the run's finder.keras
    find: Find | None = None  # where a row's items are (relunet.reading.digits.Find)

    def classify(self, images: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """(probabilities [n, 10], not a digit [n] bool) of uint8 digits, BATCH at a time."""
        parts = [self._classify(images[i : i + BATCH]) for i in range(0, len(images), BATCH)]
        if not parts:
            return np.zeros((0, NUM_CLASSES), np.float32), np.zeros(0, bool)
        return np.concatenate([p for p, _ in parts]), np.concatenate([r for _, r in parts])

    def probabilities(self, images: np.ndarray) -> np.ndarray:
        """Calibrated class probabilities [n, 10] of uint8 digits [n, 28, 28, 1]."""
        return self.classify(images)[0]

    def _classify(self, images: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        if self.keras_model is None:
            out = self.signature(**{IMAGES: tf.constant(images, tf.uint8)})
            probabilities = out[PROBABILITIES].numpy()
            if NOT_A_DIGIT in out:
                return probabilities, out[NOT_A_DIGIT].numpy()
            return probabilities, np.zeros(len(images), bool)  # an export before 0.3
        # Called directly: predict() would first build (and with XLA, compile) a function,
        # which costs a short command more than the math does.
        model = self.keras_model
        probabilities, rejected = calibrated(model, model(to_inputs(images), training=False))
        return probabilities.numpy(), rejected.numpy()


def load_classifier(path: str | Path, trust_model: bool = False) -> Classifier:
    """Load a `.keras` model or a SavedModel from any of the paths relunet writes, and
    check that it maps 28x28x1 images to 10 classes.

    A SavedModel runs only if its serving signature uses the ops relunet's exports use
    (see `relunet.inference.trust`), unless `trust_model`.
    """
    resolved = resolve_model_path(path)
    if resolved.suffix == ".keras":
        try:
            model = load_model(str(resolved))
        except (ValueError, TypeError, OSError, KeyError, zipfile.BadZipFile) as error:
            raise RelunetError(
                f"{resolved} cannot be loaded as a Keras model ({_load_error_reason(error)})."
            ) from None
        _check_keras_contract(model, resolved)
        finder = _finder_beside(resolved)
        return Classifier(resolved, keras_model=model, finder=finder, find=finder_find(finder))
    if not trust_model:
        check_trusted(resolved, SIGNATURE)
    try:
        loaded = tf.saved_model.load(str(resolved))
    except (OSError, ValueError, tf.errors.OpError) as error:
        raise RelunetError(
            f"{resolved} cannot be loaded as a SavedModel ({type(error).__name__})."
        ) from None
    if SIGNATURE not in loaded.signatures:
        raise RelunetError(f"The SavedModel {resolved} has no {SIGNATURE} signature.")
    signature = loaded.signatures[SIGNATURE]
    _check_signature_contract(signature, resolved)
    rows = loaded.signatures.get(ROWS_SIGNATURE)
    return Classifier(resolved, signature=signature, saved_model=loaded, find=signature_find(rows))


def _finder_beside(model_path: Path) -> keras.Model | None:
    """The finder.keras a run dir holds beside its best.keras, if any."""
    path = RunDir(model_path.parent).finder
    if not path.is_file():
        return None
    try:
        return keras.models.load_model(path, safe_mode=True)
    except (ValueError, TypeError, OSError, KeyError, zipfile.BadZipFile) as error:
        raise RelunetError(
            f"{path} cannot be loaded as a Keras model ({_load_error_reason(error)})."
        ) from None


def finder_find(finder: keras.Model | None) -> Find | None:
    """The reader's Find of a trained finder: its outputs for the row, decoded
    (relunet.training.finder.centres_of, at its calibrated threshold)."""
    if finder is None:
        return None

    def find(rows: tf.Tensor) -> tuple[tf.Tensor, tf.Tensor]:
        kinds, offsets = finder(rows, training=False)
        centres, kinds, _ = centres_of(kinds[0], offsets[0], finder.other_above)
        return centres, kinds

    return find


def signature_find(rows_signature) -> Find | None:
    """The reader's Find of an export's serving_rows signature."""
    if rows_signature is None:
        return None

    def find(rows: tf.Tensor) -> tuple[tf.Tensor, tf.Tensor]:
        out = rows_signature(**{ROWS: rows})
        return out[CENTRES], out[KINDS]

    return find


_ANSI = re.compile(r"\x1b\[[0-9;]*m")  # Keras's bold and colour in its error texts


def _plain(error: Exception) -> str:
    """An error's text on one line, without Keras's terminal escapes."""
    return _ANSI.sub("", " ".join(str(error).split()))


def _check_keras_contract(model: keras.Model, path: Path) -> None:
    """The model must take a batch of 28x28x1 images and return 10 logits for each."""
    try:
        declared = model.inputs  # a functional model's Input; a subclassed one has none
    except (AttributeError, ValueError):
        declared = None
    if declared and tuple(declared[0].shape[1:]) != INPUT_SHAPE:
        raise RelunetError(
            f"{path} takes inputs of shape {tuple(declared[0].shape[1:])}; "
            f"relunet feeds it 28x28x1 images."
        )
    if isinstance(model, Finder):
        raise RelunetError(
            f"{path} is a finder, which says where the digits of a row are; the digit model "
            "is the run's best.keras (give it, or the run dir)."
        )
    try:
        outputs = model(np.zeros((1, *INPUT_SHAPE), np.float32), training=False)
    except (ValueError, TypeError, tf.errors.OpError) as error:
        reason = _plain(error)[:160]
        raise RelunetError(f"{path} does not take 28x28x1 images ({reason}).") from None
    shape = tuple(getattr(outputs, "shape", ()))
    if shape != (1, NUM_CLASSES):
        raise RelunetError(
            f"{path} returns outputs of shape {shape[1:]} for an image; relunet "
            f"needs {NUM_CLASSES} class scores."
        )


def _check_signature_contract(signature, path: Path) -> None:
    """The signature must take uint8 'images' [n, 28, 28, 1] and return 'probabilities'
    [n, 10], as `relunet export` writes it."""
    inputs = signature.structured_input_signature[1]
    outputs = signature.structured_outputs
    spec = inputs.get(IMAGES)
    expected = tf.TensorSpec([None, *INPUT_SHAPE], tf.uint8)
    probabilities = outputs.get(PROBABILITIES) if isinstance(outputs, dict) else None
    if (
        len(inputs) != 1
        or spec is None
        or not expected.is_compatible_with(spec)
        or spec.dtype != tf.uint8
        or probabilities is None
        or probabilities.shape[-1:] != (NUM_CLASSES,)
    ):
        took = ", ".join(f"{k}: {v.dtype.name} {v.shape}" for k, v in inputs.items())
        raise RelunetError(
            f"The SavedModel {path} has a {SIGNATURE} signature taking ({took}); relunet needs "
            f"one taking uint8 'images' [n, 28, 28, 1] and returning 'probabilities' [n, 10], "
            "as relunet export writes it."
        )


def _load_error_reason(error: Exception) -> str:
    text = _plain(error)
    if "safe_mode" in text:  # Keras refuses to deserialise code unless told it is trusted
        return (
            "it holds a Lambda layer, Python code that Keras's safe_mode refuses to "
            "load from a file; relunet always loads with safe_mode on"
        )
    return text.split(". ")[0][:200] or type(error).__name__
