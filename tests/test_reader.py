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
    _labelled_as_scipy_labels(np.random.default_rng(seed).random(shape) < density)


def test_labelling_ink_in_a_corner_of_a_wide_page_names_the_page_s_pixels():
    """`label` works on the ink's box: its labels must still be the whole page's flat
    indices (ink off the page's corner, with empty rows and columns all round)."""
    page = np.zeros((70, 120), bool)
    page[9:37, 61:101] = np.random.default_rng(9).random((28, 40)) < 0.35
    _labelled_as_scipy_labels(page)
    _labelled_as_scipy_labels(np.zeros((12, 20), bool))  # no ink: all 0


def _labelled_as_scipy_labels(mask: np.ndarray) -> None:
    shape = mask.shape
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
    """relunet.reading's traced read_batch on PNG pages, with no model: one call."""
    return reading_pages.read


# Rows with known boxes: (row, the boxes the reader should give, the tolerance in px).
TOLERANCE = 3


def _rows() -> dict[str, reading_pages.Row]:
    speck = [[(270, 40), (272, 41)]]
    ruled = row(["4", "2"], margin=70)
    ruled.page[ruled.page.shape[0] - 30 : ruled.page.shape[0] - 28, :] = 60
    crossed = row(["4", "2"], margin=70)
    crossed.page[110:113, :] = 60  # a ruled line through both digits
    return {
        "a 4 in two strokes": row(["4 in two strokes"]),
        "a 5 with its flag apart": row(["5 with a flag"]),
        "a slanted pair with a gap": row(["1", "1"], slant=0.35, gaps=0.25),
        "a speck beside a digit": row(["2"], extra=speck, margin=100),
        "a ruled line under a number": ruled,
        "a ruled line through a number": crossed,
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
    """Without a model: strokes of one digit that do not touch (a 4's stem, a 5's flag)
    are one digit; a slanted pair with a gap stays two; a speck and a ruled line are
    left out, and digits a ruled line runs through are kept; each box is the digit's
    own ink's, in the file's pixels."""
    expected = ROWS[name].boxes
    if name in ("a 4 in two strokes", "a 5 with its flag apart"):
        expected = [_union(expected)]
    read = read_rows[name]
    assert read["found"] and not read["too_many"] and not read["not_number"]
    assert read["count"] == len(expected), read
    found, expected = np.array(read["boxes"]), np.array(expected)
    assert np.abs(found - expected).max() <= TOLERANCE, (found.tolist(), expected.tolist())


def _owners(page: np.ndarray, centres: list[float]) -> np.ndarray:
    """relunet.reading.cuts.owners of a drawn row (dark ink on light paper) at the
    given centres, in the row's own pixels."""
    import tensorflow as tf

    from relunet.reading.cuts import owners

    ink = (255.0 - page.astype(np.float32)) / 255.0
    ink = np.where(ink > 0.3, ink, 0.0).astype(np.float32)
    return owners(tf.constant(ink), tf.constant(centres, tf.float32)).numpy()


def _middle(box: list[int]) -> float:
    return (box[1] + box[3] - 1) / 2


def test_two_digits_that_touch_are_cut_where_one_ends_and_the_other_begins():
    """A 4 whose bar runs into a 0: one component; told where the two digits are, the
    cut follows a seam through the thin place they touch: each digit's own ink goes to
    it, all but a pen's width around the seam."""
    touching = row(["4", "0"], gaps=-0.04, stretch=1.2)
    assert ndimage.label(touching.page < 128, structure=EIGHT)[1] == 1  # they touch
    four, zero = touching.boxes
    owner = _owners(touching.page, [_middle(four), _middle(zero)])
    inked = touching.page < 128
    own_four = inked & (np.arange(inked.shape[1])[None, :] < zero[1])
    own_zero = inked & (np.arange(inked.shape[1])[None, :] >= four[3])
    assert (owner[own_four] == 1).mean() > 0.97 and (owner[own_zero] == 2).mean() > 0.97
    assert set(np.unique(owner[inked])) == {1, 2}


def test_digits_whose_boxes_overlap_but_whose_ink_is_apart_keep_all_their_ink():
    """A slanted pair with a gap shares columns; each component goes whole to the centre
    it holds the most ink beside, however far the other leans into its columns."""
    pair = row(["1", "1"], slant=0.5, gaps=0.1)
    first, second = pair.boxes
    assert first[3] > second[1] + 10  # the boxes overlap
    components, count = ndimage.label(pair.page < 128, structure=EIGHT)
    assert count == 2
    owner = _owners(pair.page, [_middle(first), _middle(second)])
    for number in (1, 2):
        assert set(np.unique(owner[components == number])) == {number}


def test_a_stroke_apart_goes_to_the_digit_nearest_it():
    """A 4 in two strokes beside a 2, told the two centres: the 4's stem, which claims
    no centre, goes with its bar to the 4; nothing goes to no one."""
    pair = row(["4 in two strokes", "2"], gaps=0.3)
    four, two = pair.boxes
    assert ndimage.label(pair.page < 128, structure=EIGHT)[1] == 3
    owner = _owners(pair.page, [_middle(four), _middle(two)])
    inked = pair.page < 128
    left = inked & (np.arange(inked.shape[1])[None, :] < two[1])
    assert set(np.unique(owner[left])) == {1}
    assert set(np.unique(owner[inked])) == {1, 2}


def test_the_generated_pages_read_as_the_golden_file_says(reader):
    """Counts, boxes, ink found and too many marks, page by page; a change that alters
    one names the page."""
    golden = json.loads(reading_pages.GOLDEN.read_text())
    pages = reading_pages.golden_pages()
    assert set(pages) == set(golden), "run python tests/reading_pages.py"
    found = reader(pages)
    changed = {name: (found[name], golden[name]) for name in pages if found[name] != golden[name]}
    assert not changed, f"answers changed (found, golden): {changed}"


NUMBER_MARKS = {  # the items a row holds, left to right: D digit, P point, M minus, O other
    "DPDD": ("3.14", False),
    "MD": ("-3", False),
    "MDPD": ("-3.1", False),
    "DD": ("31", False),
    "DM": ("", True),  # a sign after the number
    "PDD": ("", True),  # a point with no digit before it
    "DDP": ("", True),  # nor after it
    "DPDPD": ("", True),  # two points
    "DOD": ("", True),  # a letter between digits
    "M": ("", True),  # a sign alone
}


@pytest.mark.parametrize("items", NUMBER_MARKS)
def test_a_point_and_a_sign_are_written_into_the_number_or_it_is_not_a_digit(items):
    """3.14 reads 3.14 and -3 reads -3, never 314 or 3; anything else is not a number."""
    import tensorflow as tf

    from relunet.base.mnist import DIGIT, MAX_DIGITS, MINUS, OTHER, POINT
    from relunet.inference.answers import serving_outputs
    from relunet.reading.items import number_marks

    kinds = tf.constant([{"D": DIGIT, "P": POINT, "M": MINUS, "O": OTHER}[c] for c in items])
    count = items.count("D")
    read = {
        name: value[None]
        for name, value in {
            **number_marks(kinds),
            "count": tf.constant(count),
            "found": tf.constant(True),
            "too_many": tf.constant(False),
            "boxes": tf.zeros([MAX_DIGITS, 4], tf.int32),
        }.items()
    }
    slots = np.zeros([1, MAX_DIGITS, 10], np.float32)
    for i, value in enumerate([3, 1, 4, 2, 5][:count]):
        slots[0, i, value] = 1.0
    said = serving_outputs(read, tf.constant(slots), tf.zeros([1, MAX_DIGITS], tf.bool))
    number, not_a_digit = NUMBER_MARKS[items]
    assert said["number"].numpy()[0].decode() == number
    assert bool(said["not_a_digit"].numpy()[0]) is not_a_digit
    assert said["class"].numpy()[0] == -1  # never one plain digit: -5 is not a 5
