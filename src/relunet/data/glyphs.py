"""Letters and symbols drawn as pen strokes, for training what is not a digit; and the
decimal point and minus sign a number may hold.

Outliers that look like what must be rejected are what teaches a network to reject it
(Hendrycks et al. 2019; Dhamija et al. 2018 trained MNIST with letters as negatives).
Relunet draws them from the Hershey stroke fonts (Allen V. Hershey, 1967; the
`hershey-fonts` package on PyPI): each glyph is a list of pen strokes, drawn here with a
jittered pen (a random slant, a smooth warp, a width), never rendered from a TTF or OTF
font. Every glyph that can pass for a digit is left out (PASS_AS_DIGITS): a network
cannot be taught that an O is not a 0.

Each drawn glyph is a float [28, 28] image in 0..1 on the glyph frame: the cap line at
row CAP, the base line at row BASE (descenders below), centred in width, so rows of
writing (relunet.data.rows) place it by its lines, as a hand writes letters.
"""

from __future__ import annotations

import functools
import math

import numpy as np
import tensorflow as tf

from relunet.data.strokes import draw

FONTS = ("futural", "futuram", "rowmans", "timesr", "timesi", "cursive", "scripts", "scriptc")
# Letters and symbols that can pass for a digit, as written: never taught as "not a digit".
PASS_AS_DIGITS = "OoDQlIijJLSsZzBbgqGTt" + "|/\\()[]{}!,.'`-_"
LETTERS = "".join(
    c for c in "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz" if c not in PASS_AS_DIGITS
)
SYMBOLS = "".join(c for c in '+=?@#$%&*<>~^:;"' if c not in PASS_AS_DIGITS)
EM = 21.0  # the fonts' units from cap line (-12) to base line (9)
EM_TOP = 12.0
CAP, BASE = 4.0, 20.0  # rows of the cap line and the base line in a drawn glyph
MAX_STROKES = 64  # glyphs drawn with more pen strokes are left out (ornate ones)
SLANT = 0.25  # the largest slant, as a shear
WARP = 1.2  # px: the largest smooth warp of a glyph's strokes
PEN = (0.7, 1.6)  # px from a stroke's centre line to its edge, at least and at most
# A decimal point's radius and a minus sign's length, px, at least and at most: down to
# a dot narrower than the pen and a dash shorter than a digit is wide (1.1 and 5.0 until
# stop 47: such points and signs were missed, and dropped; benchmarks/README.md).
POINT_RADIUS = (0.8, 2.2)
DASH_LENGTH = (3.0, 10.0)
DASH_PEN = (0.7, 1.4)  # px from a dash's centre line to its edge, at least and at most
CHUNK = 32  # glyphs drawn at once (each a [strokes, 28, 28] distance field)


@functools.cache
def stroke_table() -> tuple[np.ndarray, np.ndarray, tuple[str, ...]]:
    """(float32 [g, MAX_STROKES, 4] strokes as x0, y0, x1, y1 in ems (cap line at y 0,
    base line at y 1, left edge at x 0), bool [g, MAX_STROKES] which are drawn, each
    glyph's character) of LETTERS and SYMBOLS in FONTS."""
    from HersheyFonts import HersheyFonts  # only here: the table is made once

    fonts = HersheyFonts()
    strokes, chars = [], []
    for font in FONTS:
        fonts.load_default_font(font)
        for char in LETTERS + SYMBOLS:
            lines = list(fonts.lines_for_text(char))
            if not lines or len(lines) > MAX_STROKES:
                continue
            a = np.array([[*p, *q] for p, q in lines], np.float32)
            a[:, [0, 2]] -= a[:, [0, 2]].min()
            a[:, [1, 3]] += EM_TOP
            strokes.append(a / EM)
            chars.append(char)
    table = np.zeros((len(strokes), MAX_STROKES, 4), np.float32)
    used = np.zeros((len(strokes), MAX_STROKES), bool)
    for i, a in enumerate(strokes):
        table[i, : len(a)], used[i, : len(a)] = a, True
    return table, used, tuple(chars)


def drawn_glyphs(key: tf.Tensor, variants: int) -> tf.Tensor:
    """float [g * variants, 28, 28]: every glyph of the table drawn `variants` times, each
    with its own slant, warp, size and pen."""
    table, used, _ = stroke_table()
    return tf.concat(
        [_drawn(tf.constant(table), tf.constant(used), k) for k in _keys(key, variants)], 0
    )


VARIANTS = 4  # a run draws each letter and symbol this many ways


@functools.cache
def run_glyphs(seed: int) -> tf.Tensor:
    """float [g * VARIANTS, 28, 28]: the letters and symbols a run trains on, drawn once
    (eagerly: call it before a pipeline is traced) from its seed."""
    return drawn_glyphs(tf.constant([seed, 0x6C7F], tf.int64), VARIANTS)


def _keys(key: tf.Tensor, n: int) -> list[tf.Tensor]:
    return list(tf.unstack(tf.random.experimental.stateless_split(key, num=n)))


def _drawn(table: tf.Tensor, used: tf.Tensor, key: tf.Tensor) -> tf.Tensor:
    g = table.shape[0]
    size_key, slant_key, warp_key, pen_key = _keys(key, 4)
    size = tf.random.stateless_uniform([g, 1, 1], size_key, 0.85, 1.05) * (BASE - CAP)
    slant = tf.random.stateless_uniform([g, 1, 1], slant_key, -SLANT, SLANT)
    points = tf.reshape(table, [g, -1, 2, 2]) * size[..., None]  # [g, strokes, 2 ends, xy]
    x, y = points[..., 0], points[..., 1]
    x = x + slant * (y - size)  # slanted about the base line
    # A smooth warp moves shared end points alike, so strokes stay joined.
    w = tf.random.stateless_uniform([g, 6, 1, 1], warp_key)
    amplitude, frequency, phase = WARP * w[:, :2], 0.15 + 0.25 * w[:, 2:4], 2 * math.pi * w[:, 4:]
    x, y = (
        x + amplitude[:, 0] * tf.sin(frequency[:, 0] * y + phase[:, 0]),
        y + amplitude[:, 1] * tf.sin(frequency[:, 1] * x + phase[:, 1]),
    )
    mask = used[:, :, None]
    left = tf.reduce_min(tf.where(mask, x, 1e9), [1, 2], keepdims=True)
    right = tf.reduce_max(tf.where(mask, x, -1e9), [1, 2], keepdims=True)
    x = x + 14.0 - (left + right) / 2
    y = y + CAP + (BASE - CAP) - size  # the base line stays at BASE
    ends = tf.stack([x, y], -1)  # [g, strokes, 2, 2]
    pen = tf.random.stateless_uniform([g, 1, 1], pen_key, *PEN)
    # Drawn in chunks of glyphs with about as many strokes, each chunk only as many
    # strokes deep as its glyphs need (a glyph's strokes come first in the table): the
    # same pixels for a third of the work (glyphs have 17 strokes on average, 64 at most).
    strokes = strokes_drawn(used)
    order = np.argsort(strokes, kind="stable")
    parts = []
    for i in range(0, g, CHUNK):
        at = order[i : i + CHUNK]
        deep = max(int(strokes[at].max()), 1)
        chunk = tf.gather(ends[:, :deep], at)
        parts.append(
            draw(chunk[:, :, 0], chunk[:, :, 1], tf.gather(used[:, :deep], at), tf.gather(pen, at))
        )
    return tf.gather(tf.concat(parts, 0), np.argsort(order))


def strokes_drawn(used: tf.Tensor) -> np.ndarray:
    """int [g]: how many of each glyph's stroke slots are drawn (they come first)."""
    return tf.reduce_sum(tf.cast(used, tf.int32), 1).numpy()


def points_and_dashes(key: tf.Tensor, count: int) -> tuple[tf.Tensor, tf.Tensor]:
    """(float [count, 28, 28] decimal points and minus signs on the glyph frame, bool
    [count] which are points): a round dot on the base line (POINT_RADIUS: one to two
    pens wide), or a short level dash near the middle of the line (DASH_LENGTH,
    DASH_PEN)."""
    kind_key, size_key, place_key = _keys(key, 3)
    is_point = tf.random.stateless_uniform([count], kind_key) < 0.5
    u = tf.random.stateless_uniform([count, 4], size_key)
    grid_x = tf.range(28, dtype=tf.float32)[None, None, :] + 0.5
    grid_y = tf.range(28, dtype=tf.float32)[None, :, None] + 0.5
    # a point: its centre a little above the base line
    radius = POINT_RADIUS[0] + (POINT_RADIUS[1] - POINT_RADIUS[0]) * u[:, 0, None, None]
    point_y = BASE - radius + tf.random.stateless_uniform([count, 1, 1], place_key, -0.5, 1.0)
    point = radius + 0.5 - tf.sqrt((grid_x - 14.0) ** 2 + (grid_y - point_y) ** 2)
    # a dash: level, at 35-60% of the height
    half = (DASH_LENGTH[0] + (DASH_LENGTH[1] - DASH_LENGTH[0]) * u[:, 1, None, None]) / 2
    pen = DASH_PEN[0] + (DASH_PEN[1] - DASH_PEN[0]) * u[:, 2, None, None]
    dash_y = BASE - (BASE - CAP) * (0.35 + 0.25 * u[:, 3, None, None])
    along = tf.maximum(tf.abs(grid_x - 14.0) - half, 0.0)
    dash = pen + 0.5 - tf.sqrt(along**2 + (grid_y - dash_y) ** 2)
    drawn = tf.where(is_point[:, None, None], point, dash)
    return tf.clip_by_value(drawn, 0.0, 1.0), is_point
