"""Probabilities that mean what they say, and an honest "not a digit".

A network's softmax is over-confident or under-confident by a factor its training
leaves behind. Temperature scaling (Guo et al. 2017) divides the logits by the one
number T that makes the validation split's probabilities most likely (lowest
cross-entropy); the ranking of the classes, and so the accuracy, stays as it was. The
expected calibration error (ECE) then says how far the printed probability is from
how often it is right: the mean, over confidence bins weighted by their images, of
|accuracy - confidence|.

"Not a digit": a digit whose calibrated probability stays below `reject_below` is not
read. The threshold is the probability under which REJECTED_DIGITS of the validation
split's digits fall; a network trained with shapes that are not digits
(`--non-digits`, relunet.data.nondigits) learned to spread its probability over all ten
classes for such shapes, so they fall under it too.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

import numpy as np
from scipy.optimize import minimize_scalar
from scipy.special import log_softmax, softmax

REJECTED_DIGITS = 0.008  # the share of the validation split's digits left unread
BINS = 15  # confidence bins of the ECE and the reliability diagram


@dataclass
class Calibration:
    """What calibrating a model on a validation split found."""

    temperature: float
    reject_below: float
    ece_before: float  # of the softmax as trained
    ece_after: float  # with the temperature
    rejected: float  # the share of the validation digits under reject_below
    images: int

    def to_dict(self) -> dict:
        return asdict(self)


def calibration(logits: np.ndarray, labels: np.ndarray) -> Calibration:
    """The temperature and the threshold for logits [n, 10] of a validation split with
    its labels [n]."""
    temperature = fit_temperature(logits, labels)
    before, after = softmax(logits, axis=-1), softmax(logits / temperature, axis=-1)
    confidence = after.max(-1)
    reject_below = float(np.quantile(confidence, REJECTED_DIGITS))
    return Calibration(
        temperature=round(temperature, 4),
        reject_below=round(reject_below, 4),
        ece_before=round(ece(before, labels), 5),
        ece_after=round(ece(after, labels), 5),
        rejected=round(float((confidence < reject_below).mean()), 5),
        images=len(labels),
    )


def fit_temperature(logits: np.ndarray, labels: np.ndarray) -> float:
    """The T in [0.05, 20] that minimises the cross-entropy of softmax(logits / T),
    found over log T by scipy's bounded scalar minimiser (the loss is unimodal in it)."""
    picked = (np.arange(len(labels)), labels)

    def loss(log_t: float) -> float:
        return float(-log_softmax(logits / np.exp(log_t), axis=-1)[picked].mean())

    found = minimize_scalar(
        loss, bounds=(np.log(0.05), np.log(20.0)), method="bounded", options={"xatol": 1e-6}
    )
    return float(np.exp(found.x))


def ece(probabilities: np.ndarray, labels: np.ndarray, bins: int = BINS) -> float:
    """Expected calibration error of probabilities [n, 10] against labels [n]."""
    confidence, correct = probabilities.max(-1), probabilities.argmax(-1) == labels
    return float(sum(w * abs(a - c) for a, c, w in reliability(confidence, correct, bins)))


def reliability(
    confidence: np.ndarray, correct: np.ndarray, bins: int = BINS
) -> list[tuple[float, float, float]]:
    """(accuracy, mean confidence, share of images) of each non-empty confidence bin of
    equal width in (0, 1]."""
    edges = np.linspace(0.0, 1.0, bins + 1)
    which = np.clip(np.digitize(confidence, edges[1:-1], right=True), 0, bins - 1)
    found = []
    for b in range(bins):
        inside = which == b
        if inside.any():
            found.append(
                (
                    float(correct[inside].mean()),
                    float(confidence[inside].mean()),
                    float(inside.mean()),
                )
            )
    return found
