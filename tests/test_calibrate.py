"""relunet.training.calibrate: the temperature that makes a validation split's
probabilities most likely, the expected calibration error, and the "not a digit"
threshold, on logits made with a known temperature."""

from __future__ import annotations

import numpy as np
import pytest
from scipy.special import softmax

from relunet.training.calibrate import REJECTED_DIGITS, calibration, ece, fit_temperature


def _logits(temperature: float, n: int = 4000, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Logits [n, 10] and labels drawn from softmax(logits / temperature): the labels are
    exactly as likely as that softmax says, so `temperature` is the one to find."""
    rng = np.random.default_rng(seed)
    logits = rng.normal(0.0, 4.0, (n, 10)).astype(np.float32)
    chances = softmax(logits / temperature, axis=-1)
    labels = (chances.cumsum(-1) < rng.random((n, 1))).sum(-1).clip(0, 9)
    return logits, labels


@pytest.mark.parametrize("temperature", [0.5, 1.0, 2.5])
def test_the_fitted_temperature_is_the_one_the_labels_were_drawn_with(temperature):
    logits, labels = _logits(temperature)
    assert fit_temperature(logits, labels) == pytest.approx(temperature, rel=0.08)


def test_the_fitted_temperature_is_the_least_cross_entropy_on_a_fine_grid():
    logits, labels = _logits(1.7, seed=1)
    grid = np.exp(np.linspace(np.log(0.05), np.log(20.0), 4001))
    picked = (np.arange(len(labels)), labels)
    losses = [-np.log(softmax(logits / t, axis=-1)[picked]).mean() for t in grid]
    best = grid[int(np.argmin(losses))]
    assert fit_temperature(logits, labels) == pytest.approx(best, rel=2e-3)


def test_calibration_lowers_the_ece_and_leaves_the_share_it_names_unread():
    logits, labels = _logits(2.0, seed=2)
    found = calibration(logits, labels)
    assert found.ece_after < found.ece_before
    assert found.rejected == pytest.approx(REJECTED_DIGITS, abs=0.002)
    assert found.images == len(labels) and 1.8 < found.temperature < 2.2


def test_the_ece_is_the_mean_gap_between_confidence_and_accuracy_over_bins():
    """Two bins: four images at confidence 0.95, three right (gap 0.2); four at 0.55, two
    right (gap 0.05): ECE = 0.5 * 0.2 + 0.5 * 0.05."""
    probabilities = np.array([[0.95, 0.05]] * 4 + [[0.55, 0.45]] * 4)
    labels = np.array([0, 0, 0, 1, 0, 0, 1, 1])
    assert ece(probabilities, labels) == pytest.approx(0.5 * 0.2 + 0.5 * 0.05)
