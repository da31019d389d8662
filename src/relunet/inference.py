"""Use a trained model on images: `relunet predict` and `relunet evaluate`.

The model comes from any path relunet writes (`relunet.classifier`). Images may be
PNG, JPEG, GIF or BMP files of any size, each made into an MNIST digit
(`relunet.images`), or `.npy` arrays of 28x28 images; `evaluate` reads a split of
the dataset or a folder of labelled image files.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import tensorflow as tf

from relunet import data, preflight
from relunet.classifier import BATCH, Classifier, load_classifier
from relunet.config import EvaluateConfig, PredictConfig
from relunet.errors import RelunetError
from relunet.headers import over_budget
from relunet.images import found_as_is, mnist_digit
from relunet.inputs import labelled_image_files, read_npy_images


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
        too_many = over_budget(tf.constant(encoded))
        if too_many:
            raise RelunetError(f"{name} {too_many}.")
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
            data.evaluation_pipeline(arrays, batch_size=BATCH), verbose=0, return_dict=True
        )
        return {
            "loss": float(result["loss"]),
            "accuracy": float(result["accuracy"]),
            "examples": len(arrays),
        }
    probabilities, labels = classifier.probabilities(arrays.images.numpy()), arrays.labels.numpy()
    found = np.ones(len(labels), bool) if found is None else found
    chosen = probabilities[np.arange(len(labels)), labels]
    # Clipped as Keras clips probabilities in categorical_crossentropy.
    loss = float(-np.log(np.clip(chosen, 1e-7, 1.0)).mean())
    correct = (probabilities.argmax(-1) == labels) & found
    result = {"loss": loss, "accuracy": float(correct.mean()), "examples": len(labels)}
    if not found.all():
        result["no_digit"] = int((~found).sum())
    return result


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
