"""An image file (PNG, JPEG, GIF or BMP, any size) made into the MNIST digits written on
it, left to right, in TensorFlow ops.

One traced function, `read_digits` (and `read_batch` of many files), serves both
`relunet predict` (and `evaluate --images`) on image files and the exported
SavedModel's `serving_bytes` signature, so a client posting a PNG to TensorFlow Serving
gets what `relunet predict` says for the same file. The steps, from what MNIST's digits
look like (LeCun et al., the MNIST page: dark paper at 0, ink up to 255, the digit in a
20x20 box centred by mass in 28x28):

  1. size          the size the file's header declares must be at most MAX_PIXELS
                   (relunet.reading.image_headers) before anything is decoded: a small
                   file can declare a huge image (a decompression bomb); a large JPEG is
                   decoded at a half, a quarter or an eighth by libjpeg itself;
  2. grey          scaled to at most 160 px on its shorter side and 640 on its longer
                   (relunet.reading.ink.shrink), transparency over white, ITU-R 601
                   luma; a photo of a sheet on a dark table all round is cropped to it;
  3. polarity      inverted when the paper is lighter than the ink;
  4. paper         its level removed, uneven paper and shadows too (a white top-hat);
  5. ink           Otsu's threshold splits ink from paper, and the ink must stand out
                   from the paper's noise, or there is no digit;
  6. contrast      stretched: the ink's median to 255, paper to 0;
  7. specks        connected components much lighter than the digit, paper edges and
                   ruled lines are erased (relunet.reading.components), so they neither
                   set a box nor reach the model;
  8. digits        the components grouped into digits, touching digits cut
                   (relunet.reading.segment), at most MAX_DIGITS; each more than a dot;
  9. crop, box     each digit's ink cropped, padded square, scaled into an 80x80 box;
 10. stroke width  brought toward MNIST's (a grey erosion or dilation of at most two
                   pixels a side in the working box) when far from it;
 11. place         scaled to 20x20 and put in 28x28 with its centre of mass centred.

Each answer comes with `found`: false when there is no digit to speak of (a blank page,
a photo of nothing), so callers say "no digit found" instead of the model's guess. A
28x28 greyscale image on a dark background (an MNIST digit saved as a file) is taken as
it is.
"""

from __future__ import annotations

import tensorflow as tf

from relunet.base.mnist import IMAGE_SIZE, INPUT_SHAPE, MAX_DIGITS, PIXEL_MAX
from relunet.imaging.measure import centre_of_mass, span
from relunet.imaging.morphology import dilate3, max_filter, min_filter
from relunet.imaging.transform import padded_square, resized
from relunet.reading import components, ink, segment
from relunet.reading.image_headers import MAX_PIXELS, declared_size, within_budget

DIGIT_BOX = 20  # MNIST digits are scaled into a 20x20 box centred in 28x28
WORK_BOX = 80  # where stroke width is measured and changed (4 x DIGIT_BOX)
STROKE_WIDTH = 8.0  # MNIST's median stroke width in the working box
STROKE_TOLERANCE = 0.25  # a width within 25% of it is left alone
MAX_STROKE_CHANGE = 2  # pixels of erosion or dilation a side, at most
MIN_DIGIT_SIDE = 3  # pixels, once the page is scaled down (relunet.reading.ink.shrink): a dot
DIGIT = tf.TensorSpec(INPUT_SHAPE, tf.uint8)


@tf.function(input_signature=[tf.TensorSpec([], tf.string)], autograph=False)
def read_digits(encoded: tf.Tensor) -> dict[str, tf.Tensor]:
    """The digits written in one image file, left to right, each made an MNIST digit:

        digits    uint8 [MAX_DIGITS, 28, 28, 1], zeros past `count`
        count     int32, the digits found (0 for a blank page)
        boxes     int32 [MAX_DIGITS, 4], each digit's top, left, bottom, right (ends
                  excluded) in the file's pixels
        found     bool, ink that stands out from the paper, in a digit's size or more
        too_many  bool, more marks than MAX_DIGITS: not a number relunet reads

    An InvalidArgumentError for a file that declares more than MAX_PIXELS."""
    size = declared_size(encoded)
    fits = tf.debugging.Assert(
        within_budget(size),
        [
            f"the image declares more pixels than relunet reads ({MAX_PIXELS}), as frames, "
            "height and width:",
            size,
        ],
    )
    with tf.control_dependencies([fits]):
        image = _decoded(encoded, size[1], size[2])
    small, factor = ink.shrink(image)
    # Where a JPEG was decoded smaller, boxes are scaled back to the file's pixels.
    factor = (
        factor
        * tf.cast(tf.shape(image)[0], tf.float32)
        / tf.cast(tf.maximum(size[1], 1), tf.float32)
    )
    is_mnist = tf.logical_and(
        tf.reduce_all(tf.equal(tf.shape(image), INPUT_SHAPE)),
        tf.reduce_mean(ink.border(small)) < PIXEL_MAX / 2,
    )
    return tf.cond(
        is_mnist,
        lambda: as_it_is(tf.reshape(image, INPUT_SHAPE)),
        lambda: read_page(small, factor),
    )


def _decoded(encoded: tf.Tensor, height: tf.Tensor, width: tf.Tensor) -> tf.Tensor:
    """uint8 [h, w, channels]: the image, a large JPEG decoded at a half, a quarter or an
    eighth of its size by libjpeg itself (relunet.reading.ink.reduction), which costs a
    fraction of decoding it whole and scaling it down."""

    def jpeg(ratio):
        return lambda: tf.io.decode_jpeg(encoded, ratio=ratio)

    ratio = ink.reduction(height, width)
    return tf.cond(
        tf.logical_and(tf.io.is_jpeg(encoded), ratio > 1),
        lambda: tf.switch_case(ratio // 4, [jpeg(2), jpeg(4), jpeg(8)]),
        lambda: tf.io.decode_image(encoded, expand_animations=False),
    )


READ = {  # what read_digits returns, for tf.map_fn over a batch of files
    "digits": tf.TensorSpec([MAX_DIGITS, *INPUT_SHAPE], tf.uint8),
    "count": tf.TensorSpec([], tf.int32),
    "boxes": tf.TensorSpec([MAX_DIGITS, 4], tf.int32),
    "found": tf.TensorSpec([], tf.bool),
    "too_many": tf.TensorSpec([], tf.bool),
}


def read_batch(encoded: tf.Tensor) -> dict[str, tf.Tensor]:
    """read_digits of each of a batch [n] of image files' bytes, stacked."""
    return tf.map_fn(read_digits, encoded, fn_output_signature=READ)


# read_batch traced once for any number of files: in a traced function map_fn's images
# are read side by side, on every core (parallel_iterations).
read_many = tf.function(
    read_batch, input_signature=[tf.TensorSpec([None], tf.string)], autograph=False
)


@tf.function(input_signature=[tf.TensorSpec([], tf.string)], autograph=False)
def mnist_digit(encoded: tf.Tensor) -> tuple[tf.Tensor, tf.Tensor]:
    """(uint8 [28, 28, 1], bool found): the first digit an image file holds (of a file of
    one digit, that digit)."""
    read = read_digits(encoded)
    return read["digits"][0], tf.logical_and(read["found"], read["count"] > 0)


def as_it_is(digit: tf.Tensor) -> dict[str, tf.Tensor]:
    """A 28x28 greyscale image on a dark ground (an MNIST digit saved as a file): one digit."""
    found = found_as_is(digit)
    digits = tf.concat([digit[None], tf.zeros([MAX_DIGITS - 1, *INPUT_SHAPE], tf.uint8)], 0)
    box = tf.constant([0, 0, IMAGE_SIZE, IMAGE_SIZE], tf.int32)
    boxes = tf.concat([box[None], tf.zeros([MAX_DIGITS - 1, 4], tf.int32)], 0)
    count = tf.cast(found, tf.int32)
    too_many = tf.constant(False)
    return {
        "digits": digits,
        "count": count,
        "boxes": boxes,
        "found": found,
        "too_many": too_many,
    }


def found_as_is(digits: tf.Tensor) -> tf.Tensor:
    """bool for each digit already in MNIST's form ([..., 28, 28, 1], ink high on 0):
    whether any of its pixels stands out from the black ground."""
    pixels = tf.cast(digits, tf.float32)
    return tf.reduce_max(pixels, axis=[-3, -2, -1]) > ink.MIN_CONTRAST


def read_page(small: tf.Tensor, factor: tf.Tensor) -> dict[str, tf.Tensor]:
    """read_digits of a grey image [h, w] in 0..255, the file scaled by `factor` (boxes
    are divided by it): the page's ink found (relunet.reading.ink), split into digits
    (relunet.reading.segment), each made an MNIST digit (`as_mnist`)."""
    sheet, corner = ink.on_the_paper(small)
    x = ink.without_paper(ink.ink_up(sheet))
    threshold = ink.otsu(x, tf.reduce_max(x))
    strokes = x > threshold
    level = ink.ink_level(x, strokes)
    contrast = ink.stands_out(x, strokes, level)
    x = ink.stretched(x, level, threshold)
    x, strokes, ids = components.without_specks(x, strokes)
    found = tf.logical_and(contrast, tf.reduce_any(strokes))
    group, windows, group_map = segment.digit_slots(tf.where(found, ids, 0))
    slots = tf.size(group)
    too_many = slots > MAX_DIGITS
    edge = dilate3(tf.cast(group_map, tf.float32))  # each group with its antialiased fringe
    digits, boxes, real = tf.map_fn(  # the slots there are, not MAX_DIGITS of them
        lambda slot: _one_digit(x, group_map, edge, *slot),
        (group[:MAX_DIGITS], windows[:MAX_DIGITS]),
        fn_output_signature=(
            tf.TensorSpec([IMAGE_SIZE, IMAGE_SIZE], tf.float32),
            tf.TensorSpec([4], tf.int32),
            tf.TensorSpec([], tf.bool),
        ),
    )
    spare = MAX_DIGITS - tf.minimum(slots, MAX_DIGITS)
    digits = tf.reshape(
        tf.pad(digits, [[0, spare], [0, 0], [0, 0]]), [MAX_DIGITS, *INPUT_SHAPE[:2]]
    )
    boxes = tf.reshape(tf.pad(boxes, [[0, spare], [0, 0]]), [MAX_DIGITS, 4])
    real = tf.reshape(tf.pad(real, [[0, spare]]), [MAX_DIGITS])
    keep = tf.argsort(tf.cast(tf.logical_not(real), tf.int32), stable=True)  # real ones first
    digits, boxes, real = (tf.gather(t, keep) for t in (digits, boxes, real))
    count = tf.reduce_sum(tf.cast(real, tf.int32))
    offset = tf.tile(tf.cast(corner, tf.float32), [2])
    boxes = tf.cast(tf.round((tf.cast(boxes, tf.float32) + offset) / factor), tf.int32)
    boxes = tf.where(real[:, None], boxes, 0)
    digits = tf.where(real[:, None, None], digits, 0.0)
    return {
        "digits": tf.cast(tf.round(digits), tf.uint8)[..., None],
        "count": count,
        "boxes": boxes,
        "found": tf.logical_and(found, count > 0),
        "too_many": too_many,
    }


def _one_digit(x, group_map, edge, group, window) -> tuple[tf.Tensor, tf.Tensor, tf.Tensor]:
    """One digit's slot: its ink (its group's, within its window) cropped tight and made
    an MNIST digit; its box in the page's pixels; whether it is one (a slot of padding,
    or ink smaller than MIN_DIGIT_SIDE, is not)."""
    top, left, bottom, right = tf.unstack(window)
    x, group_map, edge = (t[top:bottom, left:right] for t in (x, group_map, edge))
    own = tf.equal(group_map, group + 1)
    top_, bottom_ = span(tf.reduce_any(own, 1))  # (n, 0) for no ink: not real
    left_, right_ = span(tf.reduce_any(own, 0))
    real = (group >= 0) & (tf.maximum(bottom_ - top_, right_ - left_) >= MIN_DIGIT_SIDE)
    fringe = tf.equal(edge, tf.cast(group + 1, tf.float32))
    piece = tf.where(fringe | own, x, 0.0)[top_:bottom_, left_:right_]
    digit = tf.cond(real, lambda: as_mnist(piece), lambda: tf.zeros([IMAGE_SIZE, IMAGE_SIZE]))
    return digit, tf.stack([top + top_, left + left_, top + bottom_, left + right_]), real


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
