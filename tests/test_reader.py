"""The reader (relunet.reading) tested without a model: the labelling it uses
(relunet.imaging.measure.label) against scipy's, its grouping and cutting on rows drawn
with known boxes, and its answers on a fixed set of generated pages against
tests/reading_golden.json, so that a change which alters an answer (a speed-up, a new
heuristic) fails here, not in a benchmark.

The pages are drawn by seeded code in tests/reading_pages.py; when an answer is meant to
change, `python tests/reading_pages.py` writes the golden file again (say why in the
commit)."""

from __future__ import annotations

import json

import numpy as np
import pytest
import reading_pages
from reading_pages import png, row
from scipy import ndimage

EIGHT = np.ones((3, 3), bool)  # 8-connectivity, as the reader labels ink


def label(mask: np.ndarray) -> np.ndarray:
    import tensorflow as tf

    from relunet.imaging.measure import label

    traced = tf.function(label, input_signature=[tf.TensorSpec([None, None], tf.bool)])
    return traced(tf.constant(mask)).numpy()


@pytest.mark.parametrize(
    "shape, density, seed",
    [
        ((1, 1), 1.0, 0),
        ((1, 40), 0.5, 1),
        ((40, 1), 0.5, 2),
        ((7, 9), 0.4, 3),
        ((33, 17), 0.3, 4),
        ((48, 64), 0.45, 5),
        ((64, 64), 0.6, 6),
        ((50, 90), 0.15, 7),
        ((31, 31), 0.0, 8),
    ],
)
def test_labelling_finds_scipy_s_8_connected_components(shape, density, seed):
    """Random ink of every density up to the percolation of 8-connected pixels (~0.41)
    and past it: the same components as scipy.ndimage.label, each labelled with the
    largest 1-based flat index of its pixels, and 0 off the ink."""
    mask = np.random.default_rng(seed).random(shape) < density
    found = label(mask)
    expected, count = ndimage.label(mask, structure=EIGHT)
    assert np.array_equal(found > 0, mask)
    index = np.arange(mask.size).reshape(shape) + 1
    for k in range(1, count + 1):
        pixels = expected == k
        assert np.unique(found[pixels]).tolist() == [index[pixels].max()], k
    assert len(np.unique(found[mask])) == count


def test_labelling_follows_a_winding_path_to_its_end():
    """One component that winds back and forth across the mask (a path 3x3 spreading
    alone would cross a pixel a pass): one label, the largest index of its pixels."""
    mask = np.zeros((41, 41), bool)
    mask[::2] = True
    for r in range(1, 41, 2):
        mask[r, -1 if r % 4 == 1 else 0] = True
    found = label(mask)
    assert np.unique(found[mask]).tolist() == [np.flatnonzero(mask.ravel()).max() + 1]


@pytest.fixture(scope="module")
def reader():
    """relunet.reading's read_many on PNG pages: one call, traced once."""
    return reading_pages.read


# Rows with known boxes: (row, the boxes the reader should give, the tolerance in px).
TOLERANCE = 3


def _rows() -> dict[str, reading_pages.Row]:
    speck = [[(270, 40), (272, 41)]]
    ruled = row(["4", "2"], margin=70)
    ruled.page[ruled.page.shape[0] - 30 : ruled.page.shape[0] - 28, :] = 60
    return {
        "a 4 in two strokes": row(["4 in two strokes"]),
        "a 5 with its flag apart": row(["5 with a flag"]),
        "a slanted pair with a gap": row(["1", "1"], slant=0.35, gaps=0.25),
        "a speck beside a digit": row(["2"], extra=speck, margin=100),
        "a ruled line under a number": ruled,
        "42": row(["4", "2"]),
        "2026": row(list("2026"), height=80, pen=6),
    }


ROWS = _rows()


@pytest.fixture(scope="module")
def read_rows(reader):
    return reader({name: png(r.page) for name, r in ROWS.items()})


def _union(boxes: list[list[int]]) -> list[int]:
    tops, lefts, bottoms, rights = zip(*boxes, strict=True)
    return [min(tops), min(lefts), max(bottoms), max(rights)]


@pytest.mark.parametrize("name", list(ROWS))
def test_each_digit_of_a_row_is_found_in_its_own_box(read_rows, name):
    """Strokes of one digit that do not touch (a 4's stem, a 5's flag) are grouped into
    one digit; a slanted pair with a gap stays two; a speck and a ruled line are left
    out; each box is the digit's own ink's, in the file's pixels."""
    expected = ROWS[name].boxes
    if name in ("a 4 in two strokes", "a 5 with its flag apart"):
        expected = [_union(expected)]
    read = read_rows[name]
    assert read["found"] and not read["too_many"]
    assert read["count"] == len(expected), read
    found, expected = np.array(read["boxes"]), np.array(expected)
    assert np.abs(found - expected).max() <= TOLERANCE, (found.tolist(), expected.tolist())


def test_two_digits_that_touch_are_cut_near_where_one_ends_and_the_other_begins(reader):
    """A 4 whose bar runs into a 0: one component, wider than a digit, cut in two at a
    thin column; the cut lies within 15% of the height of the columns the two share."""
    touching = row(["4", "0"], gaps=-0.04, stretch=1.2)
    assert ndimage.label(touching.page < 128, structure=EIGHT)[1] == 1  # they touch
    read = reader({"40": png(touching.page)})["40"]
    assert read["count"] == 2, read
    (four, zero), (first, second) = touching.boxes, read["boxes"]
    assert abs(first[1] - four[1]) <= TOLERANCE and abs(second[3] - zero[3]) <= TOLERANCE
    cut, reach = first[3], 0.15 * (four[2] - four[0])
    assert zero[1] - reach <= cut <= four[3] + reach, (cut, four, zero)
    assert second[1] == cut  # the second digit starts at the cut


def test_the_generated_pages_read_as_the_golden_file_says(reader):
    """Counts, boxes, ink found and too many marks, page by page; a change that alters
    one names the page."""
    golden = json.loads(reading_pages.GOLDEN.read_text())
    pages = reading_pages.golden_pages()
    assert set(pages) == set(golden), "run python tests/reading_pages.py"
    found = reader(pages)
    changed = {name: (found[name], golden[name]) for name in pages if found[name] != golden[name]}
    assert not changed, f"answers changed (found, golden): {changed}"
