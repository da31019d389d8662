"""Pages for the reader's tests, drawn by seeded code (no stored images): rows of digits
with known boxes, and a fixed set of pages whose answers are kept in
tests/reading_golden.json.

    python tests/reading_pages.py    # writes tests/reading_golden.json from today's reader

Run it only when an answer is meant to change, and say why in the commit: the golden
file is what makes a speed-up that changes an answer fail a test (tests/test_reader.py).
"""

from __future__ import annotations

import io
import json
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from drawings import GLYPHS, _arc
from PIL import Image, ImageDraw

GOLDEN = Path(__file__).with_name("reading_golden.json")

# Strokes in a box one unit tall, as drawings.GLYPHS: (width, strokes).
ROW_GLYPHS = {
    **GLYPHS,
    "1": (0.3, [[(0.05, 0.15), (0.25, 0.0), (0.25, 1.0)]]),
    # A 4 in two strokes that do not touch: the bar, and the stem below it.
    "4 in two strokes": (
        0.7,
        [[(0.42, 0.0), (0.0, 0.6), (0.7, 0.6)], [(0.5, 0.72), (0.5, 1.0)]],
    ),
    # A 5 whose flag was written apart from its body.
    "5 with a flag": (
        0.6,
        [
            [(0.1, 0.08), (0.05, 0.45), *_arc(0.3, 0.68, 0.28, 0.3, 225, 485, 14)[1:]],
            [(0.22, 0.0), (0.6, 0.0)],
        ],
    ),
}


@dataclass
class Row:
    """A page of dark ink on light paper, and where each digit on it is: boxes [top,
    left, bottom, right] (ends excluded), each from its own strokes' ink alone."""

    page: np.ndarray  # uint8 [h, w]
    boxes: list[list[int]] = field(default_factory=list)


def _draw(size: tuple[int, int], lines: list, pen: int) -> np.ndarray:
    """Strokes (lists of (x, y) points in pixels) as a 0/1 ink mask [h, w]."""
    image = Image.new("L", size, 0)
    draw = ImageDraw.Draw(image)
    for stroke in lines:
        draw.line(stroke, fill=255, width=pen, joint="curve")
        for x, y in (stroke[0], stroke[-1]):
            draw.ellipse([x - pen / 2, y - pen / 2, x + pen / 2, y + pen / 2], fill=255)
    return np.asarray(image) > 127


def _box(mask: np.ndarray) -> list[int]:
    rows, cols = np.flatnonzero(mask.any(1)), np.flatnonzero(mask.any(0))
    return [int(rows[0]), int(cols[0]), int(rows[-1]) + 1, int(cols[-1]) + 1]


def row(
    glyphs: list[str],
    height: int = 100,
    pen: int = 8,
    gaps: float | list[float] = 0.3,
    slant: float = 0.0,
    stretch: float = 1.0,
    margin: int = 60,
    extra: list | None = None,
    paper: float = 236.0,
    ink: float = 32.0,
) -> Row:
    """`glyphs` (names of ROW_GLYPHS) written left to right, `height` px tall, with
    `gaps` between them (a share of the height; negative: they overlap), leaning right
    by `slant` (x moves slant * height from bottom to top), each `stretch` times as wide
    as ROW_GLYPHS has it, and `extra` strokes (pixels, from the page's top left) that
    are no digit: a speck, a ruled line."""
    gaps = [gaps] * (len(glyphs) - 1) if isinstance(gaps, float | int) else gaps
    placed, left = [], 0.0
    for i, name in enumerate(glyphs):
        width, strokes = ROW_GLYPHS[name]
        placed.append(
            [
                [
                    (margin + (left + stretch * x + slant * (1 - y)) * height, margin + y * height)
                    for x, y in stroke
                ]
                for stroke in strokes
            ]
        )
        left += stretch * width + (gaps[i] if i < len(gaps) else 0.0)
    size = (int(margin * 2 + (left + slant) * height), margin * 2 + height)
    masks = [_draw(size, lines, pen) for lines in placed]
    every = np.any(masks, axis=0) | (_draw(size, extra, pen // 2 or 1) if extra else False)
    page = np.where(every, ink, paper).astype(np.uint8)
    return Row(page, [_box(m) for m in masks])


def png(page: np.ndarray) -> bytes:
    buffer = io.BytesIO()
    Image.fromarray(page).save(buffer, format="PNG")
    return buffer.getvalue()


def _encoded(image: Image.Image, kind: str, quality: int = 88) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, format=kind, **({"quality": quality} if kind == "JPEG" else {}))
    return buffer.getvalue()


def _photo(page: np.ndarray, rng: np.random.Generator, light: float, noise: float) -> np.ndarray:
    """Uneven light (a ramp of `light` grey levels across) and sensor noise."""
    h, w = page.shape
    ramp = light * np.linspace(-0.5, 0.5, w)[None, :]
    return np.clip(page + ramp + rng.normal(0, noise, (h, w)), 0, 255).astype(np.uint8)


def golden_pages() -> dict[str, bytes]:
    """The fixed set of pages whose answers tests/reading_golden.json keeps: numbers,
    one digit, what is not a digit, nothing, too many marks, touching and slanted
    digits, specks, ruled lines, a sheet on a table, uneven light and noise, large
    photos (a JPEG decoded smaller), an MNIST digit as a file, transparency, light ink
    on dark paper, and each file format."""
    rng = np.random.default_rng(30)
    pages = {}

    def add(name: str, page: np.ndarray, kind: str = "PNG", **photo) -> None:
        if photo:
            page = _photo(page, rng, **photo)
        pages[name] = _encoded(Image.fromarray(page), kind)

    add("42", row(["4", "2"]).page)
    add("2026 noisy", row(list("2026"), height=80, pen=6).page, light=20, noise=4)
    add("4 small on a large page", np.pad(row(["4"], height=40, pen=4).page, 150, "edge"))
    add("0 thick", row(["0"], pen=18).page)
    add("60 slanted", row(["6", "0"], slant=0.25).page)
    add("246 uneven light", row(list("246")).page, light=90, noise=2)
    specks = [[(30 + 40 * i, 20 + 13 * i), (32 + 40 * i, 21 + 13 * i)] for i in range(5)]
    add("2 with specks", row(["2"], extra=specks).page)
    ruled = row(["4", "2"], margin=70)
    for y in (25, ruled.page.shape[0] - 25):
        ruled.page[y : y + 2, :] = 60
    add("42 ruled", ruled.page)
    sheet = row(["6"], margin=90).page.copy()
    sheet[:30], sheet[-30:], sheet[:, :30], sheet[:, -30:] = 45, 45, 45, 45
    add("6 on a dark table", sheet)
    add("402 jpeg", row(list("402")).page, "JPEG", light=10, noise=3)
    big = np.asarray(Image.fromarray(row(["2", "4"], height=500, pen=40, margin=300).page))
    add("24 large jpeg", big, "JPEG", light=30, noise=3)
    add("A", row(["A"]).page)
    add("smiley", row(["smiley"]).page)
    add("blank", np.full((120, 200), 236, np.uint8), light=10, noise=2)
    add("nine marks", row(list("024602460"), height=60, pen=5).page)
    add("00 touching", row(["0", "0"], gaps=-0.08).page)
    add("11 slanted with a gap", row(["1", "1"], slant=0.35, gaps=0.25).page)
    add("4 in two strokes", row(["4 in two strokes"]).page)
    add("5 with a flag", row(["5 with a flag"]).page)
    four = [[(4 + 20 * x, 4 + 20 * y) for x, y in s] for s in ROW_GLYPHS["4"][1]]
    add("4 as an mnist file", np.where(_draw((28, 28), four, 3), 255, 0).astype(np.uint8))
    two = row(["2"]).page
    rgba = np.stack([np.zeros_like(two)] * 3 + [255 - two], -1)  # black ink, its alpha
    pages["2 on transparency"] = _encoded(Image.fromarray(rgba, "RGBA"), "PNG")
    add("2 light on dark", 255 - row(["2"]).page)
    add("6 bmp", row(["6"]).page, "BMP")
    add("0 gif", row(["0"]).page, "GIF")
    return pages


def read(pages: dict[str, bytes]) -> dict[str, dict]:
    """What the reader finds in each page without a model (each group of ink apart a
    digit): its count, boxes (one per digit), whether it found ink and too many digits,
    and its point, sign and anything else (relunet's read_batch, traced, in one call)."""
    import tensorflow as tf

    from relunet.reading.digits import reader

    read_many = reader()[1]
    found = {k: v.numpy() for k, v in read_many(tf.constant(list(pages.values()))).items()}
    return {
        name: {
            "count": int(found["count"][i]),
            "boxes": found["boxes"][i][: found["count"][i]].tolist(),
            "found": bool(found["found"][i]),
            "too_many": bool(found["too_many"][i]),
            "point": int(found["point"][i]),
            "minus": bool(found["minus"][i]),
            "not_number": bool(found["not_number"][i]),
        }
        for i, name in enumerate(pages)
    }


if __name__ == "__main__":
    GOLDEN.write_text(json.dumps(read(golden_pages()), indent=1) + "\n")
    print(f"wrote {GOLDEN}")
