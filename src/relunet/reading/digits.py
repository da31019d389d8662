"""An image file (PNG, JPEG, GIF, BMP or WebP, any size) made into the MNIST digits written on
it, left to right, in TensorFlow ops.

One traced function, `read_digits` (and `read_batch` of many files), serves both
`relunet predict` (and `evaluate --images`) on image files and the exported
SavedModel's `serving_bytes` signature, so a client posting a PNG to TensorFlow Serving
gets what `relunet predict` says for the same file. The steps, from what MNIST's digits
look like (LeCun et al., the MNIST page: dark paper at 0, ink up to 255, the digit in a
20x20 box centred by mass in 28x28):

  1. size          the size the file's header declares must be within the budget
                   (relunet.reading.image_headers) before anything is decoded: a small
                   file can declare a huge image (a bomb); a large JPEG is decoded at a
                   half, a quarter or an eighth by libjpeg, its budget checked at that;
  2. grey          decoded (a large JPEG at a half, a quarter or an eighth), scaled
                   to at most 160 px on its shorter side and 640 on its longer
                   (relunet.reading.ink.shrink), transparency over white (over black
                   where what is drawn is light), ITU-R 601 luma, turned as a JPEG's
                   Exif orientation says (a phone stores a portrait photo sideways);
                   a photo of a sheet on a dark table all round is cropped to it;
  3. polarity      inverted when the paper is lighter than the ink;
  4. paper         its level removed, uneven paper and shadows too (a white top-hat);
  5. ink           Otsu's threshold splits ink from paper; the ink must stand out from
                   the paper's noise and span MIN_DIGIT_SIDE, or there is no digit;
  6. contrast      stretched: the ink's median to 255, paper to 0;
  7. specks        connected components much lighter than the digit, paper edges and
                   ruled lines are erased (relunet.reading.components), so they neither
                   set a box nor reach the model;
  8. row           the ink made a row of writing 20 px tall (relunet.imaging.rows), and
                   its items found on it: digits, a decimal point, a minus sign, or
                   what is not a digit (the learned finder, relunet.training.finder;
                   without a model, one digit per group of components apart);
  9. cut           the ink cut into the digits found (relunet.reading.cuts: whole
                   components where apart, seams where they touch), at most MAX_DIGITS;
 10. crop, box     each digit's ink cropped, padded square, scaled into an 80x80 box;
 11. stroke width  brought toward MNIST's (an erosion or dilation of at most 2 px a side);
 12. place         scaled to 20x20 and put in 28x28 with its centre of mass centred.

`found` is false when there is no digit to speak of (a blank page, a photo of nothing):
callers say "no digit found", not the model's guess. A 28x28 greyscale image on a dark
ground (an MNIST digit saved as a file) is taken as it is.
"""

from __future__ import annotations

import functools
from collections.abc import Callable

import tensorflow as tf

from relunet.base.mnist import DIGIT, IMAGE_SIZE, INPUT_SHAPE, MAX_DIGITS, PIXEL_MAX
from relunet.imaging.measure import centre_of_mass, span
from relunet.imaging.morphology import max_filter, min_filter
from relunet.imaging.rows import row_images
from relunet.imaging.transform import padded_square, resized, upright
from relunet.reading import components, cuts, ink
from relunet.reading.image_headers import (
    MAX_JPEG_PIXELS,
    MAX_PIXELS,
    declared_size,
    decoded,
    exif_orientation,
    within_budget,
)
from relunet.reading.items import Find, apart, number_marks

MIN_DIGIT_SIDE = 3  # pixels, once the page is scaled down (relunet.reading.ink.shrink): a dot
DIGIT_BOX = 20  # MNIST digits are scaled into a 20x20 box centred in 28x28
WORK_BOX = 80  # where stroke width is measured and changed (4 x DIGIT_BOX)
STROKE_WIDTH = 8.0  # MNIST's median stroke width in the working box
STROKE_TOLERANCE = 0.25  # a width within 25% of it is left alone
MAX_STROKE_CHANGE = 2  # pixels of erosion or dilation a side, at most


def read_digits(encoded: tf.Tensor, find: Find | None = None) -> dict[str, tf.Tensor]:
    """The digits written in one image file, left to right, each made an MNIST digit,
    the items of its row found by `find` (default `apart`):

        digits      uint8 [MAX_DIGITS, 28, 28, 1], zeros past `count`
        count       int32, the digits found (0 for a blank page)
        boxes       int32 [MAX_DIGITS, 4], each digit's top, left, bottom, right (ends
                    excluded) in the file's pixels, seen upright (a JPEG's Exif
                    orientation applied, as a phone's photo is shown)
        found       bool, ink that stands out from the paper, in a digit's size or more
        too_many    bool, more digits than MAX_DIGITS: not a number relunet reads
        point       int32, how many digits come before a decimal point (-1: none)
        minus       bool, a minus sign before the first digit
        not_number  bool, something written that is neither a digit nor a number's
                    point or sign, or a point or sign where a number has none

    An InvalidArgumentError for a file over relunet.reading.image_headers' budget."""
    size = declared_size(encoded)
    fits = tf.debugging.Assert(
        within_budget(size, tf.io.is_jpeg(encoded)),
        [
            f"the image declares more pixels than relunet reads ({MAX_PIXELS} decoded, "
            f"{MAX_JPEG_PIXELS} declared by a JPEG), as frames, height and width:",
            size,
        ],
    )
    with tf.control_dependencies([fits]):
        image, decoded_at = decoded(encoded, size)
    small, factor = ink.shrink(image)
    small = upright(small, exif_orientation(encoded))
    factor = factor * decoded_at  # boxes in the file's pixels, where a JPEG was decoded smaller
    is_mnist = tf.logical_and(
        tf.reduce_all(tf.equal(tf.shape(image), INPUT_SHAPE)),
        tf.reduce_mean(ink.border(small)) < PIXEL_MAX / 2,
    )
    return tf.cond(
        is_mnist,
        lambda: as_it_is(tf.reshape(image, INPUT_SHAPE)),
        lambda: read_page(small, factor, find or apart),
    )


READ = {  # what read_digits returns, for tf.map_fn over a batch of files
    "digits": tf.TensorSpec([MAX_DIGITS, *INPUT_SHAPE], tf.uint8),
    "count": tf.TensorSpec([], tf.int32),
    "boxes": tf.TensorSpec([MAX_DIGITS, 4], tf.int32),
    "found": tf.TensorSpec([], tf.bool),
    "too_many": tf.TensorSpec([], tf.bool),
    "point": tf.TensorSpec([], tf.int32),
    "minus": tf.TensorSpec([], tf.bool),
    "not_number": tf.TensorSpec([], tf.bool),
}


def read_batch(encoded: tf.Tensor, find: Find | None = None) -> dict[str, tf.Tensor]:
    """read_digits of each of a batch [n] of image files' bytes, stacked."""
    return tf.map_fn(lambda e: read_digits(e, find), encoded, fn_output_signature=READ)


@functools.cache
def reader(find: Find | None = None) -> tuple[Callable, Callable]:
    """(read_digits, read_batch) with `find`, each traced once, for any file and any
    number of files (in a traced function map_fn's images are read side by side, on
    every core)."""
    one = tf.function(
        lambda e: read_digits(e, find),
        input_signature=[tf.TensorSpec([], tf.string)],
        autograph=False,
    )
    many = tf.function(
        lambda e: read_batch(e, find),
        input_signature=[tf.TensorSpec([None], tf.string)],
        autograph=False,
    )
    return one, many


def mnist_digit(encoded: tf.Tensor) -> tuple[tf.Tensor, tf.Tensor]:
    """(uint8 [28, 28, 1], bool found): a file's first digit, found without a model."""
    read = reader()[0](encoded)  # traced once: eagerly, a photo is thousands of small ops
    return read["digits"][0], tf.logical_and(read["found"], read["count"] > 0)


def as_it_is(digit: tf.Tensor) -> dict[str, tf.Tensor]:
    """A 28x28 greyscale image on a dark ground (an MNIST digit saved as a file): one digit."""
    found = found_as_is(digit)
    digits = tf.concat([digit[None], tf.zeros([MAX_DIGITS - 1, *INPUT_SHAPE], tf.uint8)], 0)
    box = tf.constant([0, 0, IMAGE_SIZE, IMAGE_SIZE], tf.int32)
    boxes = tf.concat([box[None], tf.zeros([MAX_DIGITS - 1, 4], tf.int32)], 0)
    return {
        "digits": digits,
        "count": tf.cast(found, tf.int32),
        "boxes": boxes,
        "found": found,
        "too_many": tf.constant(False),
        "point": tf.constant(-1),
        "minus": tf.constant(False),
        "not_number": tf.constant(False),
    }


def found_as_is(digits: tf.Tensor) -> tf.Tensor:
    """bool for each digit already in MNIST's form ([..., 28, 28, 1], ink high on 0):
    whether any of its pixels stands out from the black ground."""
    pixels = tf.cast(digits, tf.float32)
    return tf.reduce_max(pixels, axis=[-3, -2, -1]) > ink.MIN_CONTRAST


def read_page(small: tf.Tensor, factor: tf.Tensor, find: Find) -> dict[str, tf.Tensor]:
    """read_digits of a grey image [h, w] in 0..255, the file scaled by `factor` (boxes
    are divided by it): the page's ink found (relunet.reading.ink, .components), its row
    made the finder's input (relunet.imaging.rows), its items found by `find`, the ink
    cut into them (relunet.reading.cuts), each digit made an MNIST digit (`as_mnist`)."""
    sheet, corner, background = ink.on_the_paper(small)
    x = ink.without_paper(ink.ink_up(sheet, background))
    threshold = ink.otsu(x, tf.reduce_max(x))
    strokes = x > threshold
    level = ink.ink_level(x, strokes)
    contrast = ink.stands_out(x, strokes, level)
    x = ink.stretched(x, level, threshold)
    x, strokes, _ = components.without_specks(x, strokes)
    top, bottom = span(tf.reduce_any(strokes, 1))
    left, right = span(tf.reduce_any(strokes, 0))
    found = contrast & (tf.maximum(bottom - top, right - left) >= MIN_DIGIT_SIDE)
    page = tf.where(found, x, 0.0) / PIXEL_MAX
    centres, kinds = tf.cond(
        found,
        lambda: _row_items(page, find),
        lambda: (tf.zeros([0]), tf.zeros([0], tf.int32)),
    )
    owner, numbers, kinds = _owned(page, centres, kinds)
    is_digit = tf.equal(kinds, DIGIT)
    count = tf.reduce_sum(tf.cast(is_digit, tf.int32))
    slot = tf.boolean_mask(numbers, is_digit)[:MAX_DIGITS]
    digits, boxes = tf.map_fn(
        lambda number: _one_digit(x, owner, number),
        slot,
        fn_output_signature=(
            tf.TensorSpec([IMAGE_SIZE, IMAGE_SIZE], tf.float32),
            tf.TensorSpec([4], tf.int32),
        ),
    )
    spare = MAX_DIGITS - tf.size(slot)
    digits = tf.reshape(
        tf.pad(digits, [[0, spare], [0, 0], [0, 0]]), [MAX_DIGITS, *INPUT_SHAPE[:2]]
    )
    offset = tf.tile(tf.cast(corner, tf.float32), [2])
    boxes = tf.cast(tf.round((tf.cast(boxes, tf.float32) + offset) / factor), tf.int32)
    boxes = tf.reshape(tf.pad(boxes, [[0, spare], [0, 0]]), [MAX_DIGITS, 4])
    return {
        "digits": tf.cast(tf.round(digits), tf.uint8)[..., None],
        "count": tf.minimum(count, MAX_DIGITS),
        "boxes": boxes,
        "found": tf.logical_and(found, tf.size(kinds) > 0),
        "too_many": count > MAX_DIGITS,
        **number_marks(kinds),
    }


def _owned(page: tf.Tensor, centres: tf.Tensor, kinds: tf.Tensor) -> tuple[tf.Tensor, ...]:
    """(owner [h, w], the items' owner numbers [k'], their kinds [k']): the page's ink cut
    among the items (relunet.reading.cuts); an item the cut left no ink is not there."""
    owner = tf.cond(
        tf.size(centres) > 0,
        lambda: cuts.owners(page, centres),
        lambda: tf.zeros_like(page, tf.int32),
    )
    flat = tf.reshape(owner, [-1])
    inked = tf.math.unsorted_segment_sum(tf.ones_like(flat), flat, tf.size(centres) + 1)[1:] > 0
    return owner, tf.cast(tf.where(inked)[:, 0], tf.int32) + 1, tf.boolean_mask(kinds, inked)


def _row_items(page: tf.Tensor, find: Find) -> tuple[tf.Tensor, tf.Tensor]:
    """(centres float [k] in the page's columns, kinds int32 [k]) of the items `find`
    sees on the page's row; a page whose ink `find` makes nothing of is one digit, its
    centre the ink's centre of mass (what the digit model then makes of it decides)."""
    rows, mapping = row_images(page[None])
    centres, kinds = find(rows)
    centres = mapping.page_columns(centres[None])[0]
    none = tf.equal(tf.size(centres), 0)
    return (
        tf.cond(none, lambda: centre_of_mass(page)[1][None], lambda: centres),
        tf.cond(none, lambda: tf.constant([DIGIT]), lambda: kinds),
    )


def _one_digit(x: tf.Tensor, owner: tf.Tensor, number: tf.Tensor) -> tuple[tf.Tensor, tf.Tensor]:
    """The digit `number` owns (relunet.reading.cuts): its ink cropped tight and made an
    MNIST digit, and its box in the page's pixels."""
    own = tf.equal(owner, number)
    top, bottom = span(tf.reduce_any(own, 1))
    left, right = span(tf.reduce_any(own, 0))
    piece = tf.where(own[top:bottom, left:right], x[top:bottom, left:right], 0.0)
    return as_mnist(piece), tf.stack([top, left, bottom, right])


def as_mnist(piece: tf.Tensor) -> tf.Tensor:
    """A digit's ink [h, w] (cropped to it, ink high) made as MNIST's digits were made:
    padded square, its strokes brought toward MNIST's width, scaled into 20x20 and put
    in 28x28 with its centre of mass at the centre. float [28, 28] in 0..255."""
    digit = tf.clip_by_value(_boxed(padded_square(piece)), 0.0, PIXEL_MAX)
    top, left = _mass_centred_offsets(digit)
    margin = IMAGE_SIZE - DIGIT_BOX
    return tf.pad(digit, [[top, margin - top], [left, margin - left]])


def _boxed(square: tf.Tensor) -> tf.Tensor:
    """The 20x20 digit from the cropped square, its strokes brought toward MNIST's width
    in the 80x80 working box."""
    work = resized(square, (WORK_BOX, WORK_BOX))
    width = ink.stroke_width(work)
    # Eroding (or dilating) by r pixels a side changes the width by 2 r.
    r = tf.cast(tf.round((width - STROKE_WIDTH) / 2.0), tf.int32)
    r = tf.clip_by_value(r, -MAX_STROKE_CHANGE, MAX_STROKE_CHANGE)
    r = tf.where(tf.abs(width - STROKE_WIDTH) <= STROKE_TOLERANCE * STROKE_WIDTH, 0, r)
    k = 2 * tf.abs(r) + 1
    work = tf.case(
        [
            (r > 0, lambda: min_filter(work, k)),
            (r < 0, lambda: max_filter(work, k)),
        ],
        default=lambda: work,
    )
    return resized(work, (DIGIT_BOX, DIGIT_BOX))


def _mass_centred_offsets(digit: tf.Tensor) -> tuple[tf.Tensor, tf.Tensor]:
    """Where to put the 20x20 digit in 28x28 so that its centre of mass is the centre.
    In float64: a symmetric digit's centre lands on .5 exactly and rounds to even."""
    row, col = centre_of_mass(tf.cast(tf.maximum(digit, 0.0), tf.float64))
    margin = IMAGE_SIZE - DIGIT_BOX

    def offset(com):
        return tf.cast(tf.clip_by_value(tf.round(IMAGE_SIZE / 2 - com), 0, margin), tf.int32)

    return offset(row), offset(col)
