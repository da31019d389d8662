"""Read what people wrote: `relunet predict`, and the reading `relunet evaluate` shares.

The model comes from any path relunet writes (`relunet.inference.classifier`). An image
file (PNG, JPEG, GIF, BMP or WebP, any size) is read as a row of digits
(`relunet.reading.digits`), every digit of every file classified in one batch, and each
file answered as a number, one digit, "not a digit" or "no digit found"
(`relunet.inference.answers`, the exported serving_bytes signature's own function). A
`.npy` array holds 28x28 digits, one each.
"""

from __future__ import annotations

import contextlib
import functools
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import tensorflow as tf

from relunet import preflight
from relunet.base.errors import RelunetError
from relunet.config import PredictConfig
from relunet.inference.answers import as_result, classify_slots, serving_outputs
from relunet.inference.classifier import Classifier, load_classifier
from relunet.inference.npy_inputs import read_npy_images
from relunet.reading.digits import READ, Find, as_it_is, read_digits, reader
from relunet.reading.image_headers import refusal

CHUNK = 16  # image files read at once by `read_files(many=True)`
MANY = 8  # predict reads more files than this by chunks (tracing costs a few seconds)


@dataclass
class Read:
    """What was found in some inputs, by name: each one's digits, as read_digits says."""

    names: list[str]
    read: dict[str, np.ndarray]  # read_digits' keys, each stacked over the inputs


def read_files(paths: list[str | Path], many: bool = False, find: Find | None = None) -> Read:
    """Every input of the given image and .npy files (an array holds one digit an image,
    found when a pixel stands out from 0), a row's items found by `find` (a model's
    finder; by default, each group of ink apart is a digit). RelunetError naming a file
    that declares too many pixels or cannot be decoded. A few files run eagerly (a few
    hundred ops, where tracing takes seconds); `many` runs the traced function on CHUNK
    files at a time, which the cores share."""
    names, reads, files = [], [], []  # files: (its place in reads, name), read by chunks
    for name in map(str, paths):
        path = Path(name)  # that it is a file: relunet.preflight's check
        if path.suffix.lower() == ".npy":
            images = read_npy_images(path)
            names += [name] if len(images) == 1 else [f"{name}[{i}]" for i in range(len(images))]
            reads += [_as_one_digit(image) for image in images]
        else:
            names.append(name)
            reads.append(None)
            files.append((len(reads) - 1, name))
    step = CHUNK if many else 1
    for start in range(0, len(files), step):
        chunk = files[start : start + step]
        names_ = [n for _, n in chunk]
        for (place, _), read in zip(chunk, _read_chunk(names_, many, find), strict=True):
            reads[place] = read
    return Read(names, {key: np.stack([r[key] for r in reads]) for key in READ})


def one_thread_an_op() -> None:
    """Where many files are read, each op on one thread: map_fn reads a chunk's files side
    by side on the cores already, and a photo's few thousand small ops gain nothing from
    more threads but their cost (1,000 photos: 19 CPU-seconds read with TensorFlow's
    default, 14 with one; the note of issue 33). Only before TensorFlow has started: in
    a notebook that has run ops, it stays as it is."""
    with contextlib.suppress(RuntimeError):
        tf.config.threading.set_intra_op_parallelism_threads(1)


def _read_chunk(names: list[str], many: bool, find: Find | None) -> list[dict[str, np.ndarray]]:
    """read_file of each file, the chunk at once when `many` (one by one again when one
    of them cannot be decoded, to name it)."""
    encoded = [Path(name).read_bytes() for name in names]
    if not many or len(names) == 1:
        return [read_file(e, n, many, find) for e, n in zip(encoded, names, strict=True)]
    for e, name in zip(encoded, names, strict=True):
        _within_budget(e, name)
    try:
        found = reader(find)[1](tf.constant(encoded))
    except (tf.errors.InvalidArgumentError, ValueError):
        return [read_file(e, n, many, find) for e, n in zip(encoded, names, strict=True)]
    arrays = {key: value.numpy() for key, value in found.items()}
    return [{key: value[i] for key, value in arrays.items()} for i in range(len(names))]


def _within_budget(encoded: bytes, name: str) -> None:
    refused = refusal(tf.constant(encoded))
    if refused:
        raise RelunetError(f"{name} {refused.text}.")


def read_file(
    encoded: bytes, name: str = "image", many: bool = False, find: Find | None = None
) -> dict[str, np.ndarray]:
    """read_digits of one file's bytes, as NumPy; RelunetError for a file that declares
    more pixels than relunet reads, or that cannot be decoded."""
    read = reader(find)[0] if many else functools.partial(read_digits, find=find)
    try:
        _within_budget(encoded, name)
        found = read(tf.constant(encoded))
    except (tf.errors.InvalidArgumentError, ValueError):
        raise RelunetError(
            f"{name} cannot be decoded as an image (PNG, JPEG, GIF, BMP or WebP)."
        ) from None
    return {key: value.numpy() for key, value in found.items()}


def _as_one_digit(image: np.ndarray) -> dict[str, np.ndarray]:
    """An array's 28x28 digit, found as read_digits finds an MNIST digit saved as a file."""
    return {key: value.numpy() for key, value in as_it_is(tf.constant(image)).items()}


def classify_reads(classifier: Classifier, found: Read) -> dict[str, np.ndarray]:
    """serving_bytes' outputs (relunet.inference.answers) for every input, the digits
    found in all of them classified in one batch."""
    read = {key: tf.constant(value) for key, value in found.read.items()}

    def classify(digits: tf.Tensor) -> tuple[np.ndarray, np.ndarray]:
        return classifier.classify(digits.numpy())

    said = serving_outputs(read, *classify_slots(read, classify))
    return {key: value.numpy() for key, value in said.items()}


def predict(config: PredictConfig) -> list[dict]:
    """`relunet predict`: one result per image (a .npy array may hold several). See
    `run_predict`. RelunetError for bad input."""
    return run_predict(preflight.predict(config))


def run_predict(config: PredictConfig) -> list[dict]:
    """`predict` for a config that has passed `relunet.preflight.predict`: for each input
    the number read (`digits`, "" if none), each digit found with its class, probability
    and box (`per_digit`), whether something was written that is not read as digits
    (`not_a_digit`) or nothing at all (`digit_found` false); and, when exactly one digit
    was read, its `class`, `probability` and all ten `probabilities` (else None)."""
    many = len(config.inputs) > MANY
    if many:
        one_thread_an_op()  # before loading the model starts TensorFlow
    classifier = load_classifier(config.model, trust_model=config.trust_model)
    found = read_files(config.inputs, many=many, find=classifier.find)
    said = classify_reads(classifier, found)
    return [
        as_result(name, {k: v[i] for k, v in said.items()}) for i, name in enumerate(found.names)
    ]


def said_in_words(result: dict) -> str:
    """One input's answer as predict prints it: `2026  (p=0.97 0.99 0.93 0.98)`, `3
    (p=0.896)`, "not a digit" or "no digit found"."""
    if result["digits"]:
        shown = " ".join(f"{d['probability']:.3f}" for d in result["per_digit"])
        return f"{result['digits']}  (p={shown})"
    return "not a digit" if result["not_a_digit"] else "no digit found"
