"""Use a trained model: load it from any path relunet writes, classify images, evaluate.

A model path may be a `.keras` file, a run dir (its `best.keras`), a SavedModel
version folder (`saved_models/relunet/3`) or the folder of versions (the newest is
used, as TF Serving would). Images may be PNG, JPEG, GIF or BMP files of any size,
or `.npy` arrays of 28x28 images.
"""

from __future__ import annotations

import zipfile
from dataclasses import dataclass
from pathlib import Path

import keras
import numpy as np
import tensorflow as tf

from relunet import data, preflight
from relunet.config import EvaluateConfig, PredictConfig
from relunet.data import to_inputs
from relunet.errors import RelunetError
from relunet.export import SIGNATURE
from relunet.images import mnist_digit
from relunet.inputs import labelled_image_files, read_npy_images
from relunet.mnist import INPUT_SHAPE, NUM_CLASSES
from relunet.model import load_model
from relunet.paths import resolve_model_path
from relunet.trust import check_trusted

BATCH = 1024  # images per call when classifying many: about 3 MB of float32 pixels


@dataclass
class Classifier:
    """Anything that maps uint8 images [n, 28, 28, 1] to class probabilities [n, 10]."""

    path: Path
    keras_model: keras.Model | None = None
    signature: object | None = None  # the SavedModel's serving_default function
    saved_model: object | None = None  # keeps the loaded SavedModel (and its variables) alive

    def probabilities(self, images: np.ndarray) -> np.ndarray:
        """Class probabilities [n, 10] of uint8 images [n, 28, 28, 1], BATCH at a time."""
        return np.concatenate(
            [
                self._probabilities(images[start : start + BATCH])
                for start in range(0, len(images), BATCH)
            ]
        )

    def _probabilities(self, images: np.ndarray) -> np.ndarray:
        if self.keras_model is None:
            return self.signature(images=tf.constant(images, tf.uint8))["probabilities"].numpy()
        # Called directly: predict() would first build (and with XLA, compile) a function,
        # which costs a short command more than the math does.
        return tf.nn.softmax(self.keras_model(to_inputs(images), training=False)).numpy()


def load_classifier(path: str | Path, trust_model: bool = False) -> Classifier:
    """Load a `.keras` model or a SavedModel from any of the paths relunet writes, and
    check that it maps 28x28x1 images to 10 classes.

    A SavedModel runs only if its serving signature uses the ops relunet's exports use
    (see `relunet.trust`), unless `trust_model`.
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
        return Classifier(resolved, keras_model=model)
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
    return Classifier(resolved, signature=signature, saved_model=loaded)


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
    try:
        outputs = model(np.zeros((1, *INPUT_SHAPE), np.float32), training=False)
    except (ValueError, TypeError, tf.errors.OpError) as error:
        reason = " ".join(str(error).split())[:160]
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
    spec = inputs.get("images")
    expected = tf.TensorSpec([None, *INPUT_SHAPE], tf.uint8)
    probabilities = outputs.get("probabilities") if isinstance(outputs, dict) else None
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
    text = " ".join(str(error).split())
    if "safe_mode" in text:  # Keras refuses to deserialise code unless told it is trusted
        return (
            "it holds a Lambda layer, Python code that Keras's safe_mode refuses to "
            "load from a file; relunet always loads with safe_mode on"
        )
    return text.split(". ")[0][:200] or type(error).__name__


def read_inputs(paths: list[str]) -> list[tuple[str, np.ndarray]]:
    """(name, uint8 [28, 28, 1]) for every image in the given image and .npy files."""
    inputs = []
    for name in paths:
        path = Path(name)
        if not path.is_file():
            raise RelunetError(f"The input {name} does not exist or is not a file.")
        if path.suffix.lower() == ".npy":
            images = read_npy_images(path)
            if len(images) == 1:
                inputs.append((name, images[0]))
            else:
                inputs.extend((f"{name}[{i}]", image) for i, image in enumerate(images))
        else:
            inputs.append((name, to_mnist_image(path.read_bytes(), name)))
    return inputs


def to_mnist_image(encoded: bytes, name: str = "image", many: bool = False) -> np.ndarray:
    """Decode an image file and make it look like an MNIST digit: uint8 [28, 28, 1]
    (see relunet.images; the exported serving_bytes signature does the same). One image
    runs eagerly (a few dozen ops, where tracing would take longer); `many` runs the
    traced function, traced once for all of them."""
    digit = mnist_digit if many else mnist_digit.python_function
    try:
        return digit(tf.constant(encoded)).numpy()
    except (tf.errors.InvalidArgumentError, ValueError):
        raise RelunetError(
            f"{name} cannot be decoded as an image (PNG, JPEG, GIF or BMP)."
        ) from None


def evaluate_arrays(classifier: Classifier, arrays: data.Arrays) -> dict:
    """Mean cross-entropy and accuracy of the classifier on a split held in memory."""
    if classifier.keras_model is not None:
        result = classifier.keras_model.evaluate(
            data.evaluation_pipeline(arrays, BATCH), verbose=0, return_dict=True
        )
        return {
            "loss": float(result["loss"]),
            "accuracy": float(result["accuracy"]),
            "examples": len(arrays),
        }
    total_loss, correct, count = 0.0, 0, 0
    for images, labels in _batches(arrays, BATCH):
        probabilities = classifier.probabilities(images)
        chosen = probabilities[np.arange(len(labels)), labels]
        # Clipped as Keras clips probabilities in categorical_crossentropy.
        total_loss += float(-np.log(np.clip(chosen, 1e-7, 1.0)).sum())
        correct += int((probabilities.argmax(-1) == labels).sum())
        count += len(labels)
    return {"loss": total_loss / count, "accuracy": correct / count, "examples": count}


def predict_all(classifier: Classifier, arrays: data.Arrays) -> np.ndarray:
    """Class probabilities [n, 10] for every image of a split held in memory."""
    return classifier.probabilities(arrays.images.numpy())


def _batches(arrays: data.Arrays, batch_size: int):
    images, labels = arrays.images.numpy(), arrays.labels.numpy()
    for start in range(0, len(labels), batch_size):
        yield images[start : start + batch_size], labels[start : start + batch_size]


def predict(config: PredictConfig) -> list[dict]:
    """`relunet predict`: one result per image (a .npy array may hold several): its
    class, that class's probability and all ten. RelunetError for bad input."""
    return run_predict(preflight.predict(config))


def run_predict(config: PredictConfig) -> list[dict]:
    """`predict` for a config that has passed `relunet.preflight.predict`."""
    inputs = read_inputs(config.inputs)
    classifier = load_classifier(config.model, trust_model=config.trust_model)
    probabilities = classifier.probabilities(np.stack([image for _, image in inputs]))
    return [
        {
            "input": name,
            "class": int(p.argmax()),
            "probability": round(float(p.max()), 6),
            "probabilities": [round(float(x), 6) for x in p],
        }
        for (name, _), p in zip(inputs, probabilities, strict=True)
    ]


def evaluate(config: EvaluateConfig) -> dict:
    """`relunet evaluate`: loss and accuracy on a split, and the report where asked.
    RelunetError for bad input."""
    return run_evaluate(preflight.evaluate(config))


def run_evaluate(config: EvaluateConfig, verbose: bool = True) -> dict:
    """`evaluate` for a config that has passed `relunet.preflight.evaluate`."""
    classifier = load_classifier(config.model, trust_model=config.trust_model)
    if config.images:
        arrays, what = read_image_folder(config.images), f"images in {config.images}"
        facts = {"images": config.images}
    else:
        source = data.find_source(config.dataset, config.data_dir, config.tfds_dir, verbose=verbose)
        arrays, what = data.split_arrays(source, config.split), f"{config.dataset} {config.split}"
        facts = {"dataset": config.dataset, "split": config.split}
    result = evaluate_arrays(classifier, arrays)
    result.update(model=str(classifier.path), data=what, **facts)
    if config.report:
        from relunet.report import write_report

        title = f"{what}, {classifier.path}"
        result["report"], result["per_class"] = write_report(
            classifier, arrays, config.report, title
        )
    return result


def read_image_folder(folder: str | Path) -> data.Arrays:
    """Every image of a folder of subfolders 0 to 9, as predict sees it (relunet.images),
    with its subfolder's digit as its label."""
    files = labelled_image_files(folder)
    digits = [to_mnist_image(path.read_bytes(), str(path), many=True) for path, _ in files]
    labels = [label for _, label in files]
    return data.Arrays(tf.constant(np.stack(digits)), tf.constant(labels, tf.int32))
