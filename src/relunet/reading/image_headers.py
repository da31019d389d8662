"""What an image file declares in its header, read without decoding it, the most pixels
relunet decodes, the file decoded within them (`decoded`), and how a JPEG's Exif says
it is turned to be seen upright (`exif_orientation`: a phone's portrait photo).

A file of a few hundred bytes can declare a 20000x20000 image (a decompression bomb);
decoding it would take gigabytes and the minutes of every request beside it. So
`relunet predict`, `evaluate --images`, `relunet serve` (before it batches a request)
and the exported `serving_bytes` signature (inside relunet.reading.digits.read_digits,
which it runs through read_batch, where a TF Serving client meets it) read the declared
size first, with `declared_size`, the one reader of PNG, JPEG, GIF, BMP and WebP
headers, and refuse a file over the budget with `within_budget`, the one rule:

- what is decoded is at most MAX_PIXELS. A JPEG is decoded at a half, a quarter or an
  eighth of its size by libjpeg itself when that is still larger than the reader needs
  (relunet.reading.ink.reduction, as relunet.reading.digits decodes it), so its budget
  is checked on that size; PNG, GIF, BMP and WebP are decoded whole, so on the declared
  size;
- a JPEG declares at most MAX_JPEG_PIXELS: a progressive JPEG is buffered whole by
  libjpeg (its coefficients, 2 bytes a sample) whatever the scale it is decoded at;
- an animated WebP is never decoded (`animated_webp`). `refusal` says why, in one line.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import NamedTuple

import tensorflow as tf

from relunet.reading.ink import reduction

# The most pixels (frames x height x width) relunet decodes from an image file: a PNG of
# a 48-megapixel phone photo (8000x6000) passes, a 20000x20000 decompression bomb does
# not. Decoding the largest that passes takes about 150 MB (RGB) and half a second on
# one core.
MAX_PIXELS = 50_000_000
# The most pixels a JPEG may declare: a phone's 200-megapixel photo (16320x12240), which
# libjpeg decodes at an eighth (2040x1530). Its file can be progressive, whose
# coefficients libjpeg keeps whole: up to 200M x 1.5 samples (4:2:0) x 2 bytes, 600 MB
# (measured: 507 MB over the command's footprint, as much as the largest PNG read;
# benchmarks/bench_photo_memory.py).
MAX_JPEG_PIXELS = 200_000_000


class Refusal(NamedTuple):
    """Why a file is not decoded: `reason` as the server's metrics count it, `text` in words."""

    reason: str
    text: str


def refusal(encoded: tf.Tensor) -> Refusal | None:
    """None for an image file relunet decodes; else why not, read from its header before
    anything is decoded: it declares more than the budget (`within_budget`), or it is an
    animated WebP (`animated_webp`)."""
    size, jpeg, fits, animated = _size_and_fit_traced()(encoded)
    if animated:
        return Refusal(
            "animated_webp",
            "is an animated WebP, which relunet does not read (TensorFlow's decoder of "
            "animated WebPs is unsafe); save one frame as PNG or a still WebP",
        )
    if fits:
        return None
    frames, height, width = size.numpy().tolist()
    shown = f"{width}x{height} pixels" + (f" in each of {frames} frames" if frames > 1 else "")
    limit = (
        f"{MAX_JPEG_PIXELS:,} pixels relunet reads of a JPEG (relunet.reading.image_headers."
        "MAX_JPEG_PIXELS, a 200-megapixel photo's)"
        if jpeg
        else f"{MAX_PIXELS:,} pixels relunet reads of a PNG, GIF, BMP or WebP (relunet.reading."
        "image_headers.MAX_PIXELS, a 48-megapixel photo's; a JPEG, decoded smaller, may "
        f"declare up to {MAX_JPEG_PIXELS:,})"
    )
    return Refusal("image_over_pixel_budget", f"declares {shown}, more than the {limit}")


@tf.function(input_signature=[tf.TensorSpec([], tf.string)], autograph=False)
def _size_and_fit(encoded: tf.Tensor) -> tuple[tf.Tensor, ...]:
    """declared_size, is_jpeg, within_budget and animated_webp in one call (every image)."""
    size, jpeg = declared_size(encoded), tf.io.is_jpeg(encoded)
    return size, jpeg, within_budget(size, jpeg), animated_webp(encoded)


@functools.cache
def _size_and_fit_traced() -> Callable:
    """_size_and_fit's traced function, called directly: a server checks every image, and
    a tf.function's dispatch on its arguments costs as much as the check (0.2 ms)."""
    return _size_and_fit.get_concrete_function()


def within_budget(size: tf.Tensor, jpeg: tf.Tensor) -> tf.Tensor:
    """Whether an image file that declares `size` ([frames, height, width]) is read: what
    is decoded of it is at most MAX_PIXELS, and a JPEG (`jpeg`, as tf.io.is_jpeg says,
    which decides how relunet.reading.digits decodes it) declares at most
    MAX_JPEG_PIXELS."""
    declared = tf.reduce_prod(tf.cast(size, tf.float64))
    ratio = tf.cast(reduction(size[1], size[2]), tf.float64)
    sides = tf.math.ceil(tf.cast(size[1:], tf.float64) / ratio)  # libjpeg rounds up
    scaled = tf.cast(size[0], tf.float64) * sides[0] * sides[1]
    return tf.where(
        jpeg,
        tf.logical_and(scaled <= MAX_PIXELS, declared <= MAX_JPEG_PIXELS),
        declared <= MAX_PIXELS,
    )


@tf.function(input_signature=[tf.TensorSpec([], tf.string)], autograph=False)
def declared_size(encoded: tf.Tensor) -> tf.Tensor:
    """int64 [frames, height, width] that an image file's header declares, read without
    decoding it: PNG's IHDR, JPEG's frame header, BMP's info header, WebP's first chunk,
    and GIF's logical screen times its frames (TensorFlow decodes every frame of a GIF).
    [0, 0, 0] for anything else (a PNG without its IHDR, say), which decode_image then
    refuses."""
    data = _bytes(tf.strings.substr(encoded, 0, 32))  # the headers but GIF's frames

    def byte(i):
        return tf.cast(data[i], tf.int64)

    def le32(i):  # little-endian, signed
        return tf.cast(tf.bitcast(data[i : i + 4], tf.int32), tf.int64)

    def begins(magic: list[int]) -> tf.Tensor:
        return tf.reduce_all(tf.equal(data[: len(magic)], magic))

    one = tf.constant(1, tf.int64)

    def png():
        big_endian = [2**24, 2**16, 2**8, 1]
        height = tf.reduce_sum(tf.cast(data[20:24], tf.int64) * big_endian)
        return tf.stack([one, height, tf.reduce_sum(tf.cast(data[16:20], tf.int64) * big_endian)])

    def jpeg():
        shape = tf.cast(tf.io.extract_jpeg_shape(encoded), tf.int64)
        return tf.stack([one, shape[0], shape[1]])

    def gif():  # its frames are counted through the whole file
        whole = _bytes(encoded)
        frames = _gif_frames(whole, tf.size(whole, out_type=tf.int64) - 32)
        return tf.stack([frames, byte(8) + 256 * byte(9), byte(6) + 256 * byte(7)])

    def bmp():
        return tf.stack([one, tf.abs(le32(22)), tf.abs(le32(18))])

    # Each format by its signature and a field that only a real header holds: PNG's first
    # chunk is IHDR, a GIF is version 87a or 89a, a BMP's info header has a known size.
    ihdr = tf.reduce_all(tf.equal(data[12:16], [73, 72, 68, 82]))
    gif_version = tf.logical_or(begins([71, 73, 70, 56, 55, 97]), begins([71, 73, 70, 56, 57, 97]))
    info_header = tf.reduce_any(tf.equal(le32(14), [12, 40, 52, 56, 64, 108, 124]))
    return tf.case(
        [
            (tf.logical_and(begins([137, 80, 78, 71, 13, 10, 26, 10]), ihdr), png),
            (begins([255, 216]), jpeg),
            (gif_version, gif),
            (tf.logical_and(begins([66, 77]), info_header), bmp),
            (is_webp(encoded), lambda: _webp_size(data)),
        ],
        default=lambda: tf.zeros([3], tf.int64),
    )


def _webp_size(data: tf.Tensor) -> tf.Tensor:
    """declared_size of a WebP, from its first 32 bytes (uint8): its first chunk, a lossy
    (VP8), lossless (VP8L) or extended (VP8X) image, or a bare bitstream."""
    one = tf.constant(1, tf.int64)

    def unsigned(i, n):  # n bytes from i, little-endian
        return tf.reduce_sum(tf.cast(data[i : i + n], tf.int64) * [256**k for k in range(n)])

    def lossy(at):  # the key frame's 14-bit sides
        return lambda: tf.stack([one, unsigned(at + 2, 2) % 2**14, unsigned(at, 2) % 2**14])

    def lossless(at):  # 14 bits of width - 1, then of height - 1
        bits = unsigned(at, 4)
        return lambda: tf.stack([one, bits // 2**14 % 2**14 + 1, bits % 2**14 + 1])

    def extended():  # the canvas (an animation is refused: animated_webp)
        return tf.stack([one, unsigned(27, 3) + 1, unsigned(24, 3) + 1])

    def bare():  # no known chunk: libwebp reads a bitstream from byte 12
        return tf.cond(tf.equal(data[12], 0x2F), lossless(13), lossy(18))

    chunk = data[12:16]
    return tf.case(
        [
            (tf.reduce_all(tf.equal(chunk, list(b"VP8 "))), lossy(26)),
            (tf.reduce_all(tf.equal(chunk, list(b"VP8L"))), lossless(21)),
            (tf.reduce_all(tf.equal(chunk, list(b"VP8X"))), extended),
        ],
        default=bare,
    )


def _bytes(encoded: tf.Tensor) -> tf.Tensor:
    """uint8 of a file's bytes and 32 zeros after them: a short file's missing fields read 0."""
    return tf.pad(tf.io.decode_raw(encoded, tf.uint8), [[0, 32]])


def is_webp(encoded: tf.Tensor) -> tf.Tensor:
    """Whether a file is a WebP as TensorFlow's decode_image tells one: RIFF, then WEBP."""
    data = _bytes(tf.strings.substr(encoded, 0, 12))
    riff = tf.reduce_all(tf.equal(data[:4], list(b"RIFF")))
    return tf.logical_and(riff, tf.reduce_all(tf.equal(data[8:12], list(b"WEBP"))))


def animated_webp(encoded: tf.Tensor) -> tf.Tensor:
    """Whether a file is an animated WebP as libwebp tells one (its first chunk VP8X, with
    the animation flag): TensorFlow 2.21's decoder of one corrupts the heap unless its
    frames are expanded, and of a damaged one even then (the process aborts)."""
    data = _bytes(tf.strings.substr(encoded, 0, 21))
    extended = tf.reduce_all(tf.equal(data[12:16], list(b"VP8X")))
    flagged = tf.equal(tf.cast(data[20], tf.int32) // 2 % 2, 1)
    return tf.logical_and(is_webp(encoded), tf.logical_and(extended, flagged))


def _gif_frames(data: tf.Tensor, size: tf.Tensor) -> tf.Tensor:
    """The image descriptors in a GIF (at least 1), counted block by block: each block and
    each data sub-block is one step, so a file of n bytes takes at most n steps."""

    def table(flags):  # the size of a colour table that `flags` announces
        return tf.where(
            flags >= 128, 3 * tf.bitwise.left_shift(tf.constant(2, tf.int64), flags % 8), 0
        )

    def at(i):
        return tf.cast(tf.gather(data, tf.minimum(tf.cast(i, tf.int64), size)), tf.int64)

    def step(pos, frames, in_blocks, done):
        byte = at(pos)

        def sub_block():  # a size byte and that many bytes; a 0 ends the blocks
            return tf.where(byte == 0, pos + 1, pos + byte + 1), frames, byte != 0, done

        def image():  # 10 bytes, a local colour table, the LZW code size, then its blocks
            return pos + 11 + table(at(pos + 9)), frames + 1, tf.constant(True), done

        def extension():  # its introducer and label, then its blocks
            return pos + 2, frames, tf.constant(True), done

        def trailer():  # or anything else: the frames are counted
            return pos, frames, tf.constant(False), tf.constant(True)

        def block():
            return tf.case([(byte == 0x2C, image), (byte == 0x21, extension)], default=trailer)

        return tf.cond(in_blocks, sub_block, block)

    start = 13 + table(at(10))
    _, frames, _, _ = tf.while_loop(
        lambda pos, frames, in_blocks, done: tf.logical_and(tf.logical_not(done), pos < size),
        step,
        [start, tf.constant(0, tf.int64), tf.constant(False), tf.constant(False)],
        maximum_iterations=tf.cast(tf.maximum(size, 1), tf.int32),
    )
    return tf.maximum(frames, 1)


EXIF_SEARCH = 1024  # bytes of the Exif segment searched: its first entries are near its start
# The Exif orientation entry of IFD0 (tag 0x0112, SHORT, count 1) in either byte order;
# the value follows (little-endian: its low byte first; big-endian: after a 0).
_ORIENTATION_LE = [0x12, 0x01, 0x03, 0x00, 0x01, 0x00, 0x00, 0x00]
_ORIENTATION_BE = [0x01, 0x12, 0x00, 0x03, 0x00, 0x00, 0x00, 0x01]


def exif_orientation(encoded: tf.Tensor) -> tf.Tensor:
    """int32 1 to 8: how a JPEG's Exif says its pixels are to be turned to be seen
    upright (a phone stores a portrait photo sideways and says 6), 1 where it says
    nothing (or the file is not a JPEG). Found as the orientation entry's ten bytes in
    the first EXIF_SEARCH bytes of the segment after the JPEG's start, or after its
    JFIF segment (APP0) where it has one: where cameras and editors write Exif (APP1)."""

    def search():
        head = _bytes(tf.strings.substr(encoded, 0, 6))
        jfif = tf.reduce_all(tf.equal(head[2:4], [0xFF, 0xE0]))
        start = tf.where(jfif, 4 + tf.cast(head[4], tf.int32) * 256 + tf.cast(head[5], tf.int32), 2)
        start = tf.minimum(start, tf.strings.length(encoded))
        data = _bytes(tf.strings.substr(encoded, start, EXIF_SEARCH))
        windows = tf.signal.frame(data, 10, 1)
        little = tf.reduce_all(tf.equal(windows[:, :8], _ORIENTATION_LE), 1) & tf.equal(
            windows[:, 9], 0
        )
        big = tf.reduce_all(tf.equal(windows[:, :8], _ORIENTATION_BE), 1) & tf.equal(
            windows[:, 8], 0
        )
        values = tf.cast(tf.where(little, windows[:, 8], windows[:, 9]), tf.int32)
        said = tf.boolean_mask(values, (little | big) & (values >= 1) & (values <= 8))
        return tf.concat([said, [1]], 0)[0]

    return tf.cond(tf.io.is_jpeg(encoded), search, lambda: tf.constant(1))


def decoded(encoded: tf.Tensor, size: tf.Tensor) -> tuple[tf.Tensor, tf.Tensor]:
    """(uint8 [h, w, channels], float: the size it was decoded at, of the declared
    `size`'s): a large JPEG decoded at a half, a quarter or an eighth of its size by
    libjpeg itself (ink.reduction), which costs a fraction of decoding it whole and
    scaling it down."""

    def jpeg(ratio):
        return lambda: tf.io.decode_jpeg(encoded, ratio=ratio)

    def not_animated():  # never an animated WebP (InvalidArgumentError before decoding)
        still = tf.debugging.Assert(
            tf.logical_not(animated_webp(encoded)),
            ["an animated WebP, which relunet does not read"],
        )
        with tf.control_dependencies([still]):
            return tf.io.decode_image(encoded, expand_animations=False)

    ratio = reduction(size[1], size[2])
    image = tf.cond(
        tf.logical_and(tf.io.is_jpeg(encoded), ratio > 1),
        lambda: tf.switch_case(ratio // 4, [jpeg(2), jpeg(4), jpeg(8)]),
        not_animated,
    )
    decoded_at = tf.cast(tf.shape(image)[0], tf.float32) / tf.cast(
        tf.maximum(size[1], 1), tf.float32
    )
    return image, decoded_at
