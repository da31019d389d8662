"""Checks of single values that need no TensorFlow: choices, positive numbers, seeds,
tfds split strings, ports, and whether a network fits in memory.

The config dataclasses validate their fields with these (so a model built from Python is
checked too); paths are `relunet.base.paths`'s. Each raises RelunetError with one full
sentence that names the input, says what was expected and ends with what was received.
"""

from __future__ import annotations

import math
import os
import re
from typing import Any

from relunet.base.errors import RelunetError
from relunet.base.mnist import IMAGE_PIXELS, NUM_CLASSES

SEED_MAX = 2**32 - 1  # keras.utils.set_random_seed takes seeds below 2**32
COUNT_MAX = 2**31 - 1  # int32: what TensorFlow counts steps, batches and units in

# One tfds split: a name with an optional [start:end] slice in examples or percent,
# e.g. "train", "train[:2000]", "train[90%:]", "test[-1000:]". Splits join with "+".
_SLICE_BOUND = r"-?\d+%?"
_ONE_SPLIT = rf"([a-z]+)(?:\[({_SLICE_BOUND})?:({_SLICE_BOUND})?\])?"
_SPLIT_RE = re.compile(rf"^{_ONE_SPLIT}(\+{_ONE_SPLIT})*$")
_PART_RE = re.compile(rf"^{_ONE_SPLIT}$")
SPLIT_NAMES = ("train", "test")  # MNIST-style datasets have no validation split.


def check_choice(name: str, value: Any, choices: tuple[str, ...]) -> None:
    if value not in choices:
        raise RelunetError(f"{name} must be one of {', '.join(choices)}. Received: {value!r}.")


def check_positive(name: str, value: Any) -> None:
    if (
        isinstance(value, bool)
        or not isinstance(value, (int, float))
        or not (math.isfinite(value) and value > 0)
    ):
        raise RelunetError(f"{name} must be a positive number. Received: {value!r}.")


_INTERVAL = re.compile(r"^([\[(])(-?inf|-?[\d.e-]+), (-?inf|-?[\d.e-]+)([\])])$")


def check_in(name: str, value: Any, interval: str) -> None:
    """A finite number within `interval`, written as mathematics writes one: "[0, 1)" is
    0 <= value < 1, "(0, inf)" any positive number. NaN and the infinities are refused
    whatever the interval (float("1e400") is infinite), and so are bools and text."""
    opening, low, high, closing = _INTERVAL.match(interval).groups()
    low, high = float(low), float(high)
    inside = (
        not isinstance(value, bool)
        and isinstance(value, (int, float))
        and math.isfinite(value)
        and (low < value if opening == "(" else low <= value)
        and (value < high if closing == ")" else value <= high)
    )
    if not inside:
        raise RelunetError(f"{name} must {_said(interval)}. Received: {value!r}.")


def _said(interval: str) -> str:
    """An interval in words where words read better."""
    return {
        "(0, inf)": "be a positive number",
        "[0, inf)": "be a number of at least 0",
        "(-inf, inf)": "be a finite number",
    }.get(interval, f"lie in {interval}")


def check_at_most(name: str, value: int, most: int) -> None:
    if value > most:
        raise RelunetError(f"{name} must be at most {most}. Received: {value!r}.")


def check_count(name: str, value: Any, most: int = COUNT_MAX) -> None:
    """A whole number from 1 to `most` (batch sizes, epochs, widths: TensorFlow counts
    them in int32, so anything larger is a typo that would overflow deep inside)."""
    check_positive(name, value)
    if isinstance(value, float) and not value.is_integer():
        raise RelunetError(f"{name} must be a whole number. Received: {value!r}.")
    check_at_most(name, value, most)


def check_whole_from_zero(name: str, value: Any, most: int, zero: str = "") -> None:
    """A whole number from 0 to `most`; `zero` says what 0 means, where it means more."""
    if isinstance(value, bool) or not isinstance(value, int) or not 0 <= value <= most:
        raise RelunetError(
            f"{name} must be a whole number from 0{zero} to {most}. Received: {value!r}."
        )


def check_port(name: str, port: Any) -> None:
    if isinstance(port, bool) or not isinstance(port, int) or not 1 <= port <= 65535:
        raise RelunetError(f"{name} must be a port number from 1 to 65535. Received: {port!r}.")


def check_seed(seed: Any) -> None:
    if isinstance(seed, bool) or not isinstance(seed, int) or not 0 <= seed <= SEED_MAX:
        raise RelunetError(f"seed must be an integer from 0 to {SEED_MAX}. Received: {seed!r}.")


def check_split(split: str, what: str = "split") -> str:
    """Check a tfds split string such as 'train[:2000]' before loading anything: its
    syntax, its split names, and slices that select nothing whatever the split's size."""
    if not isinstance(split, str) or not _SPLIT_RE.match(split):
        raise RelunetError(
            f"{what} must be a tfds split string such as 'train', 'train[:2000]' or "
            f"'train[90%:]'. Received: {split!r}."
        )
    for part in split.split("+"):
        name, start, end = _PART_RE.match(part).groups()
        if name not in SPLIT_NAMES:
            raise RelunetError(
                f"{what} names the split {name!r}, but the datasets have only "
                f"{' and '.join(SPLIT_NAMES)}. Received: {split!r}."
            )
        for bound in (start, end):
            if bound and bound.endswith("%") and abs(int(bound[:-1])) > 100:
                raise RelunetError(
                    f"{what} has a percent bound outside -100%..100%. Received: {split!r}."
                )
        if start and end and _empty_whatever_the_size(start, end):
            raise RelunetError(
                f"{what} selects no examples: its slice ends before it starts. Received: {split!r}."
            )
    return split


def _empty_whatever_the_size(start: str, end: str) -> bool:
    """Whether [start:end] is empty for every split size (same unit, same side)."""
    if start.endswith("%") != end.endswith("%") or start.startswith("-") != end.startswith("-"):
        return False
    return int(start.rstrip("%")) >= int(end.rstrip("%"))


def training_bytes(width: int, depth: int, batch_size: int) -> int:
    """About how much memory training the network takes: the weights with their gradients,
    Adam's two moments and a working copy (5 floats a parameter), and a batch's
    activations forward and backward (3 floats a unit)."""
    parameters = (
        (IMAGE_PIXELS + 1) * width + (depth - 1) * (width + 1) * width + ((width + 1) * NUM_CLASSES)
    )
    units = IMAGE_PIXELS + 2 * depth * width + 2 * NUM_CLASSES
    return 4 * (5 * parameters + 3 * batch_size * units)


def check_fits_in_memory(width: int, depth: int, batch_size: int) -> None:
    """Refuse a network that cannot be trained in this machine's memory, with the estimate."""
    need = training_bytes(width, depth, batch_size) + _RUNTIME_BYTES
    have = available_memory()
    if have is not None and need > have:
        raise RelunetError(
            f"width {width}, depth {depth} and batch_size {batch_size} need about "
            f"{_gib(need)} of memory to train (weights, Adam's state, a batch's activations "
            f"and TensorFlow itself), more than the {_gib(have)} available."
        )


_RUNTIME_BYTES = 1 << 30  # TensorFlow, the data in memory and Python: about 1 GiB


def available_memory() -> int | None:
    """Bytes of memory available now (Linux's MemAvailable), else the physical total."""
    try:
        with open("/proc/meminfo") as f:
            for line in f:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        pass
    try:
        return os.sysconf("SC_PHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")
    except (ValueError, OSError):
        return None


def _gib(size: int) -> str:
    return f"{size / 2**30:,.1f} GiB"
