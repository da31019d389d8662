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
from relunet.images import found_as_is, mnist_digit
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


def read_inputs(paths: list[str]) -> list[tuple[str, np.ndarray, bool]]:
    """(name, uint8 [28, 28, 1], digit found) for every image in the given image and
    .npy files (an array's image counts as a digit when any pixel stands out from 0)."""
    inputs = []
    for name in paths:
        path = Path(name)  # that it is a file: relunet.preflight.predict's check
        if path.suffix.lower() == ".npy":
            images = read_npy_images(path)
            names = [name] if len(images) == 1 else [f"{name}[{i}]" for i in range(len(images))]
            found = found_as_is(images).numpy()
            inputs.extend(zip(names, images, found.tolist(), strict=True))
        else:
            inputs.append((name, *to_mnist_image(path.read_bytes(), name)))
    return inputs


def to_mnist_image(encoded: bytes, name: str = "image", many: bool = False) -> tuple:
    """Decode an image file and make it look like an MNIST digit: (uint8 [28, 28, 1],
    digit found), see relunet.images; the exported serving_bytes signature does the
    same. One image runs eagerly (a few dozen ops, where tracing would take longer);
    `many` runs the traced function, traced once for all of them."""
    digit = mnist_digit if many else mnist_digit.python_function
    try:
        image, found = digit(tf.constant(encoded))
    except (tf.errors.InvalidArgumentError, ValueError):
        raise RelunetError(
            f"{name} cannot be decoded as an image (PNG, JPEG, GIF or BMP)."
        ) from None
    return image.numpy(), bool(found)


def evaluate_arrays(
    classifier: Classifier, arrays: data.Arrays, found: np.ndarray | None = None
) -> dict:
    """Mean cross-entropy and accuracy of the classifier on images held in memory; with
    `found` (bool per image), an image in which no digit was found counts as a mistake,
    and `no_digit` says how many there were."""
    if classifier.keras_model is not None and found is None:
        result = classifier.keras_model.evaluate(
            data.evaluation_pipeline(arrays, BATCH), verbose=0, return_dict=True
        )
        return {
            "loss": float(result["loss"]),
            "accuracy": float(result["accuracy"]),
            "examples": len(arrays),
        }
    probabilities, labels = predict_all(classifier, arrays), arrays.labels.numpy()
    found = np.ones(len(labels), bool) if found is None else found
    chosen = probabilities[np.arange(len(labels)), labels]
    # Clipped as Keras clips probabilities in categorical_crossentropy.
    loss = float(-np.log(np.clip(chosen, 1e-7, 1.0)).mean())
    correct = (probabilities.argmax(-1) == labels) & found
    result = {"loss": loss, "accuracy": float(correct.mean()), "examples": len(labels)}
    if not found.all():
        result["no_digit"] = int((~found).sum())
    return result


def predict_all(classifier: Classifier, arrays: data.Arrays) -> np.ndarray:
    """Class probabilities [n, 10] for every image of a split held in memory."""
    return classifier.probabilities(arrays.images.numpy())


def predict(config: PredictConfig) -> list[dict]:
    """`relunet predict`: one result per image (a .npy array may hold several): its
    class, that class's probability and all ten. RelunetError for bad input."""
    return run_predict(preflight.predict(config))


def run_predict(config: PredictConfig) -> list[dict]:
    """`predict` for a config that has passed `relunet.preflight.predict`. An image in
    which no digit was found has no class: "digit_found" is false, the rest None."""
    inputs = read_inputs(config.inputs)
    classifier = load_classifier(config.model, trust_model=config.trust_model)
    probabilities = classifier.probabilities(np.stack([image for _, image, _ in inputs]))
    return [
        {
            "input": name,
            "digit_found": found,
            "class": int(p.argmax()) if found else None,
            "probability": round(float(p.max()), 6) if found else None,
            "probabilities": [round(float(x), 6) for x in p] if found else None,
        }
        for (name, _, found), p in zip(inputs, probabilities, strict=True)
    ]


def evaluate(config: EvaluateConfig) -> dict:
    """`relunet evaluate`: loss and accuracy on a split, and the report where asked.
    RelunetError for bad input."""
    return run_evaluate(preflight.evaluate(config))


def run_evaluate(config: EvaluateConfig, verbose: bool = True) -> dict:
    """`evaluate` for a config that has passed `relunet.preflight.evaluate`."""
    classifier = load_classifier(config.model, trust_model=config.trust_model)
    found = None
    if config.images:
        (arrays, found), what = read_image_folder(config.images), f"images in {config.images}"
        facts = {"images": config.images}
    else:
        source = data.find_source(config.dataset, config.data_dir, config.tfds_dir, verbose=verbose)
        arrays, what = data.split_arrays(source, config.split), f"{config.dataset} {config.split}"
        facts = {"dataset": config.dataset, "split": config.split}
    result = evaluate_arrays(classifier, arrays, found)
    result.update(model=str(classifier.path), data=what, **facts)
    if config.report:
        from relunet.report import write_report

        title = f"{what}, {classifier.path}"
        result["report"], result["per_class"] = write_report(
            classifier, arrays, config.report, title, found
        )
    return result


def read_image_folder(folder: str | Path) -> tuple[data.Arrays, np.ndarray]:
    """Every image of a folder of subfolders 0 to 9, as predict sees it (relunet.images),
    with its subfolder's digit as its label; and whether a digit was found in each."""
    files = labelled_image_files(folder)
    digits = [to_mnist_image(path.read_bytes(), str(path), many=True) for path, _ in files]
    images = np.stack([image for image, _ in digits])
    labels = tf.constant([label for _, label in files], tf.int32)
    return data.Arrays(tf.constant(images), labels), np.array([found for _, found in digits])
