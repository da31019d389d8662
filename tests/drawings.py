"""Numbers, letters, a star and a smiley drawn as pen strokes, the way the tests draw them: as
PNG files (dark ink on light paper) for predict and serving_bytes, and as mouse strokes
on the drawing page. Each glyph is a list of strokes, each stroke a list of points in a
box one unit tall, x rightward from the glyph's left edge and y downward from its top."""

from __future__ import annotations

import io

import numpy as np
from PIL import Image, ImageDraw


def _arc(cx, cy, rx, ry, start, stop, n=14):
    """Points on an ellipse from angle `start` to `stop` (degrees, 0 at the right, 90 at
    the bottom: the page's y runs down)."""
    t = np.radians(np.linspace(start, stop, n))
    return [(cx + rx * np.cos(a), cy + ry * np.sin(a)) for a in t]


GLYPHS = {  # (width, strokes)
    "0": (0.6, [_arc(0.3, 0.5, 0.28, 0.48, -90, 275, 20)]),
    "2": (0.6, [[*_arc(0.3, 0.27, 0.27, 0.24, 190, 380, 10), (0.03, 0.98), (0.62, 0.98)]]),
    "4": (0.65, [[(0.42, 0.0), (0.0, 0.66), (0.65, 0.66)], [(0.48, 0.25), (0.48, 1.0)]]),
    "6": (
        0.6,
        [
            [
                (0.5, 0.02),
                *_arc(0.55, 0.6, 0.5, 0.58, 235, 180, 5)[1:],
                *_arc(0.3, 0.72, 0.27, 0.26, 180, 540, 18),
            ]
        ],
    ),
    "1": (0.3, [[(0.02, 0.18), (0.22, 0.0), (0.22, 1.0)]]),
    "7": (0.6, [[(0.0, 0.02), (0.6, 0.02), (0.22, 1.0)]]),
    "A": (0.7, [[(0.0, 1.0), (0.35, 0.0), (0.7, 1.0)], [(0.13, 0.62), (0.57, 0.62)]]),
    "R": (
        0.6,
        [
            [(0.0, 1.0), (0.0, 0.0), *_arc(0.25, 0.25, 0.3, 0.25, -90, 90, 10), (0.0, 0.5)],
            [(0.25, 0.5), (0.6, 1.0)],
        ],
    ),
    "k": (0.5, [[(0.0, 0.0), (0.0, 1.0)], [(0.45, 0.4), (0.02, 0.72)], [(0.15, 0.62), (0.5, 1.0)]]),
    "?": (
        0.55,
        [[*_arc(0.27, 0.25, 0.26, 0.23, 190, 420, 12), (0.27, 0.72)], [(0.27, 0.95), (0.27, 0.97)]],
    ),
    "X": (0.8, [[(0.0, 0.0), (0.8, 1.0)], [(0.8, 0.0), (0.0, 1.0)]]),
    "star": (1.0, [[(0.5, 0.0), (0.8, 1.0), (0.0, 0.35), (1.0, 0.35), (0.2, 1.0), (0.5, 0.0)]]),
    "smiley": (
        1.0,
        [
            _arc(0.5, 0.5, 0.48, 0.48, 0, 365, 28),
            [(0.33, 0.33), (0.34, 0.36)],
            [(0.66, 0.33), (0.67, 0.36)],
            _arc(0.5, 0.52, 0.25, 0.22, 20, 160, 10),
        ],
    ),
}
GAP = 0.3  # between glyphs, as a share of their height


def strokes(
    text: str,
    height: float,
    centre: tuple[float, float] = (0, 0),
    gap: float = GAP,
    lean: tuple[float, ...] = (),
) -> list:
    """The strokes of `text` (digits and letters of GLYPHS, or "smiley", "star"), `height` pixels
    tall, centred on `centre`: a list of strokes of (x, y) points. `gap` is the space between
    glyphs (negative: they overlap); `lean[i]` shifts glyph i's top rightward by that share
    of the height, its foot staying put."""
    glyphs = [GLYPHS[text]] if text in GLYPHS else [GLYPHS[c] for c in text]
    width = sum(w for w, _ in glyphs) + gap * (len(glyphs) - 1)
    x0, y0 = centre[0] - width * height / 2, centre[1] - height / 2
    out, left = [], 0.0
    for i, (w, glyph) in enumerate(glyphs):
        slant = lean[i] if i < len(lean) else 0.0
        for stroke in glyph:
            out.append(
                [(x0 + (left + x + slant * (1 - y)) * height, y0 + y * height) for x, y in stroke]
            )
        left += w + gap
    return out


def png(
    text: str,
    height: int = 120,
    pen: int = 9,
    gap: float = GAP,
    lean: tuple[float, ...] = (),
    ruled: bool = False,
) -> bytes:
    """`text` written in dark ink on light paper, with a margin: PNG bytes. `ruled` draws a
    grey ruled line across the page, through the writing's lower third."""
    lines = strokes(text, height, gap=gap, lean=lean)
    xs = [x for stroke in lines for x, _ in stroke]
    margin = height // 2
    size = (int(max(xs) - min(xs)) + 2 * margin, height + 2 * margin)
    page = Image.new("L", size, 236)
    draw = ImageDraw.Draw(page)
    shift = (size[0] / 2, size[1] / 2)
    if ruled:
        y = margin + 0.7 * height
        draw.line([(0, y), (size[0], y)], fill=150, width=3)
    for stroke in lines:
        points = [(x + shift[0], y + shift[1]) for x, y in stroke]
        draw.line(points, fill=32, width=pen, joint="curve")
        for x, y in (points[0], points[-1]):
            draw.ellipse([x - pen / 2, y - pen / 2, x + pen / 2, y + pen / 2], fill=32)
    buffer = io.BytesIO()
    page.save(buffer, format="PNG")
    return buffer.getvalue()
