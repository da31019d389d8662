"""`relunet evaluate`: how well a model reads, on a split of the dataset or on a folder of
the user's own image files, with the report of where it goes wrong
(relunet.inference.report).

On a split, each image is a digit: accuracy (the highest probability is the label),
the cross-entropy of the calibrated probabilities, their expected calibration error,
and how many digits were answered "not a digit". On a folder, each subfolder names
what its images should read (a digit, a number, or `none`), and each image is read as
`relunet predict` reads it: how many read exactly what they should, how many of their
digits, and how many of the `none` images were answered "not a digit" or "no digit
found".
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from relunet import data, preflight
from relunet.base.signatures import DIGIT_FOUND, NOT_A_DIGIT, NUMBER, PROBABILITIES
from relunet.config import EvaluateConfig
from relunet.inference.classifier import Classifier, load_classifier
from relunet.inference.image_folders import NOTHING, labelled_image_files, one_digit
from relunet.inference.predict import classify_reads, one_thread_an_op, read_files
from relunet.inference.report import NONE, write_report
from relunet.training.calibrate import ece


def evaluate(config: EvaluateConfig) -> dict:
    """`relunet evaluate`: see the module. RelunetError for bad input."""
    return run_evaluate(preflight.evaluate(config))


def run_evaluate(config: EvaluateConfig, verbose: bool = True) -> dict:
    """`evaluate` for a config that has passed `relunet.preflight.evaluate`."""
    if config.images:
        one_thread_an_op()  # before loading the model starts TensorFlow
    classifier = load_classifier(config.model, trust_model=config.trust_model)
    if config.images:
        result, digits = on_images(classifier, config.images)
        what, facts = f"images in {config.images}", {"images": config.images}
    else:
        source = data.find_source(config.dataset, config.data_dir, config.tfds_dir, verbose=verbose)
        arrays = data.split_arrays(source, config.split)
        result, digits = on_split(classifier, arrays)
        what = f"{config.dataset} {config.split}"
        facts = {"dataset": config.dataset, "split": config.split}
    result.update(model=str(classifier.path), data=what, **facts)
    if config.report:
        title = f"{what}, {classifier.path}"
        result["report"], result["per_class"] = write_report(*digits, config.report, title)
    return result


def on_split(classifier: Classifier, arrays: data.Arrays) -> tuple[dict, tuple]:
    """The scores of digits held in memory, and (images, truth, probabilities, answers)
    for the report."""
    images, labels = arrays.images.numpy(), arrays.labels.numpy()
    probabilities, rejected = classifier.classify(images)
    predicted = np.where(rejected, NONE, probabilities.argmax(-1))
    scores = _scores(probabilities, labels)
    result = {
        "accuracy": scores["top_accuracy"],  # as training's test accuracy
        "read_accuracy": float((predicted == labels).mean()),  # read, and right
        **scores,
        "examples": len(labels),
        "not_a_digit": int(rejected.sum()),
    }
    return result, (images, labels, probabilities, predicted)


def on_images(classifier: Classifier, folder: str | Path) -> tuple[dict, tuple]:
    """The scores of a folder of labelled image files, read as predict reads them, and
    the report's arrays for its one-digit images."""
    files = labelled_image_files(folder)
    found = read_files([path for path, _ in files], many=True, find=classifier.find)
    said = classify_reads(classifier, found)
    truths = [label for _, label in files]
    read = [number.decode() for number in said[NUMBER]]
    nothing = said[NOT_A_DIGIT] | ~said[DIGIT_FOUND]
    written = [i for i, t in enumerate(truths) if t != NOTHING]
    right = [read[i] == truths[i] for i in written]
    # Digit by digit, left to right, the sign and the point aside; a digit missed, not read
    # or read beyond those written (427 for 42) is a digit wrong.
    digits = sum(max(len(_digits_of(truths[i])), len(_digits_of(read[i]))) for i in written)
    digits_right = sum(
        a == b
        for i in written
        for a, b in zip(_digits_of(read[i]), _digits_of(truths[i]), strict=False)
    )
    result = {
        "examples": len(files),
        "accuracy": float(np.mean(right)) if right else None,  # read exactly
        "digit_accuracy": digits_right / digits if digits else None,
        "not_a_digit": int(sum(said[NOT_A_DIGIT][i] for i in written)),
        "no_digit": int(sum(not said[DIGIT_FOUND][i] for i in written)),
    }
    blank = [i for i, t in enumerate(truths) if t == NOTHING]
    if blank:
        result["none"] = {"images": len(blank), "answered": int(nothing[blank].sum())}
    one = np.array([i for i in written if one_digit(truths[i])], int)
    labels = np.array([int(truths[i]) for i in one], int)
    probabilities = said[PROBABILITIES][one]
    predicted = np.array([int(read[i]) if len(read[i]) == 1 else NONE for i in one], int)
    # Without one-digit images there is no probability to score: the keys say so (None).
    result.update(_scores(probabilities, labels) if len(one) else dict.fromkeys(SCORES))
    first_digits = found.read["digits"][one, 0]
    return result, (first_digits, labels, probabilities, predicted)


def _digits_of(number: str) -> str:
    return number.replace("-", "").replace(".", "")


SCORES = ("top_accuracy", "loss", "ece")


def _scores(probabilities: np.ndarray, labels: np.ndarray) -> dict:
    """Accuracy (the highest probability is the label), the loss (cross-entropy, clipped
    as Keras clips it) and the ECE of calibrated probabilities [n, 10]."""
    chosen = probabilities[np.arange(len(labels)), labels]
    top_accuracy = float((probabilities.argmax(-1) == labels).mean())
    loss = float(-np.log(np.clip(chosen, 1e-7, 1.0)).mean())
    return dict(
        zip(SCORES, (top_accuracy, loss, round(ece(probabilities, labels), 5)), strict=True)
    )


def summary(result: dict) -> str:
    """The line `relunet evaluate` prints."""
    count = result["examples"]
    where = f"{count} image{'' if count == 1 else 's'}, {result['model']}"
    if "images" not in result:
        return (
            f"{result['data']}: accuracy {result['accuracy']:.4f}, read right "
            f"{result['read_accuracy']:.4f} (not a digit: {result['not_a_digit']}), loss "
            f"{result['loss']:.4f}, ECE {result['ece']:.4f} ({where})"
        )
    parts = []
    if result["accuracy"] is not None:
        parts.append(
            f"read exactly {result['accuracy']:.4f}, digits {result['digit_accuracy']:.4f} "
            f"(not a digit: {result['not_a_digit']}, no digit found: {result['no_digit']})"
        )
    if result["loss"] is not None:
        parts.append(f"one-digit images: loss {result['loss']:.4f}, ECE {result['ece']:.4f}")
    if "none" in result:
        none = result["none"]
        parts.append(
            f"none: {none['answered']} of {none['images']} answered not a digit or no digit found"
        )
    return f"{result['data']}: {'; '.join(parts)} ({where})"
