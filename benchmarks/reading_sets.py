"""Image files of what people write and draw, for bench_reading.py: numbers made of
MNIST's test digits, letters and symbols in the fonts matplotlib ships, doodles drawn
by code, and MNIST's test digits one by one, each as a photo of dark ink on paper.

Written into subfolders named after what each should read (`42`, `2026`, `7`, or `none`),
the layout `relunet evaluate --images` reads. None of these images is ever used to
train a model or to fit anything: the fonts only measure how letters are answered.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw, ImageFilter, ImageFont

LETTERS = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"
SYMBOLS = "+-=?!@#$%&*()[]<>/\\~^{}"


def mnist_test(data_dir: str) -> tuple[np.ndarray, np.ndarray]:
    from relunet.data import idx

    test = idx.read_folder(data_dir).splits["test"]
    return test.images[..., 0], test.labels


def photo(ink: np.ndarray, rng: np.random.Generator) -> Image.Image:
    """Ink [h, w] in 0..1 (on a margin of paper) as a photo: paper 200-245 with light
    falling off to one side, ink 15-80, a little blur and sensor noise."""
    h, w = ink.shape
    paper = rng.uniform(200, 245)
    light = paper - rng.uniform(0, 35) * np.linspace(0, 1, w)[None, :] * rng.choice([-1, 1])
    tone = rng.uniform(15, 80)
    page = light * (1 - ink) + tone * ink + rng.normal(0, rng.uniform(1, 5), (h, w))
    image = Image.fromarray(np.clip(page, 0, 255).astype(np.uint8))
    return image.filter(ImageFilter.GaussianBlur(rng.uniform(0.3, 1.0)))


def save(image: Image.Image, folder: Path, name: str, rng: np.random.Generator) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    if rng.random() < 0.5:
        image.convert("RGB").save(folder / f"{name}.jpg", quality=int(rng.integers(75, 95)))
    else:
        image.save(folder / f"{name}.png")


def _tight(digit: np.ndarray) -> np.ndarray:
    rows, cols = np.flatnonzero(digit.any(1)), np.flatnonzero(digit.any(0))
    return digit[rows[0] : rows[-1] + 1, cols[0] : cols[-1] + 1]


def number_ink(digits: list[np.ndarray], spacing: str, rng: np.random.Generator) -> np.ndarray:
    """MNIST digits [28, 28] written left to right at 3 to 5 times their size: with
    gaps (a fifth to two thirds of a digit's width), slight overlaps of their boxes (the
    ink kept apart), or touching."""
    scale = rng.uniform(3.0, 5.0)
    parts = [
        np.asarray(
            Image.fromarray(_tight(d)).resize(
                (
                    max(1, round(_tight(d).shape[1] * scale)),
                    max(1, round(_tight(d).shape[0] * scale)),
                ),
                Image.BILINEAR,
            ),
            np.float32,
        )
        / 255
        for d in digits
    ]
    height = max(p.shape[0] for p in parts)
    canvas = np.zeros((height * 2, 2 * sum(p.shape[1] for p in parts) + height * 2), np.float32)
    x = height
    for i, part in enumerate(parts):
        y = height // 2 + int(rng.integers(-height // 10, height // 10 + 1))
        if i:
            if spacing == "gaps":
                x += int(rng.uniform(0.2, 0.66) * part.shape[1])
            elif spacing == "overlaps":
                x = _closest(canvas, part, x, y, touching=False)
            else:
                x = _closest(canvas, part, x, y, touching=True)
        region = canvas[y : y + part.shape[0], x : x + part.shape[1]]
        canvas[y : y + part.shape[0], x : x + part.shape[1]] = np.maximum(region, part)
        x += part.shape[1]
    rows, cols = np.flatnonzero(canvas.any(1) > 0), np.flatnonzero(canvas.any(0) > 0)
    margin = height // 2
    return np.pad(canvas[rows[0] : rows[-1] + 1, cols[0] : cols[-1] + 1], margin)


def _closest(canvas, part, x, y, touching: bool) -> int:
    """The leftmost column (at most half the part back from x) where `part` meets the ink
    already written (touching) or stays a pixel clear of it."""
    best = x
    for left in range(x, max(0, x - part.shape[1] // 2), -1):
        region = canvas[y : y + part.shape[0], left : left + part.shape[1]]
        overlap = ((region > 0.3) & (part[:, : region.shape[1]] > 0.3)).any()
        if overlap:
            return left if touching else best
        best = left
    return best


def glyph_ink(char: str, font_path: str, rng: np.random.Generator) -> np.ndarray:
    """A character in a font, 60 to 110 px, tilted up to 8 degrees, as ink [h, w]."""
    font = ImageFont.truetype(font_path, int(rng.integers(60, 110)))
    left, top, right, bottom = font.getbbox(char)
    image = Image.new("L", (right - left + 60, bottom - top + 60), 0)
    ImageDraw.Draw(image).text((30 - left, 30 - top), char, fill=255, font=font)
    image = image.rotate(rng.uniform(-8, 8), resample=Image.BILINEAR, expand=True)
    return np.asarray(image, np.float32) / 255


def doodle_ink(kind: str, rng: np.random.Generator) -> np.ndarray:
    """A doodle drawn with a pen 3 to 8 px wide on a 200x200 sheet: a smiley, a house, a
    heart, a sun, a tree, a spiral, a scribble, a cross-hatch or a wavy line."""
    size = 200
    image = Image.new("L", (size, size), 0)
    draw = ImageDraw.Draw(image)
    pen = int(rng.integers(3, 9))
    c = size / 2 + rng.uniform(-10, 10, 2)
    r = rng.uniform(50, 80)
    if kind == "smiley":
        draw.ellipse([c[0] - r, c[1] - r, c[0] + r, c[1] + r], outline=255, width=pen)
        for dx in (-0.35, 0.35):
            e = c + np.array([dx * r, -0.3 * r])
            draw.ellipse([e[0] - pen, e[1] - pen, e[0] + pen, e[1] + pen], fill=255)
        draw.arc(
            [c[0] - 0.55 * r, c[1] - 0.4 * r, c[0] + 0.55 * r, c[1] + 0.55 * r], 20, 160, 255, pen
        )
    elif kind == "house":
        draw.rectangle([c[0] - r, c[1] - 0.2 * r, c[0] + r, c[1] + r], outline=255, width=pen)
        draw.line(
            [(c[0] - r, c[1] - 0.2 * r), (c[0], c[1] - r), (c[0] + r, c[1] - 0.2 * r)], 255, pen
        )
    elif kind == "heart":
        t = np.linspace(0, 2 * np.pi, 60)
        x, y = (
            16 * np.sin(t) ** 3,
            13 * np.cos(t) - 5 * np.cos(2 * t) - 2 * np.cos(3 * t) - np.cos(4 * t),
        )
        draw.line(list(zip(c[0] + x * r / 17, c[1] - y * r / 17, strict=True)), 255, pen)
    elif kind == "sun":
        draw.ellipse(
            [c[0] - r / 2, c[1] - r / 2, c[0] + r / 2, c[1] + r / 2], outline=255, width=pen
        )
        for a in np.linspace(0, 2 * np.pi, 9)[:-1]:
            draw.line(
                [
                    tuple(c + 0.65 * r * np.array([np.cos(a), np.sin(a)])),
                    tuple(c + r * np.array([np.cos(a), np.sin(a)])),
                ],
                255,
                pen,
            )
    elif kind == "tree":
        draw.line([(c[0], c[1] + r), (c[0], c[1])], 255, pen)
        draw.polygon(
            [(c[0] - r * 0.7, c[1]), (c[0], c[1] - r), (c[0] + r * 0.7, c[1])],
            outline=255,
            width=pen,
        )
    elif kind == "spiral":
        t = np.linspace(0, 4 * np.pi, 80)
        draw.line(
            list(
                zip(
                    c[0] + t / (4 * np.pi) * r * np.cos(t),
                    c[1] + t / (4 * np.pi) * r * np.sin(t),
                    strict=True,
                )
            ),
            255,
            pen,
        )
    elif kind == "scribble":
        points = c + rng.normal(0, r / 2, (int(rng.integers(8, 16)), 2))
        draw.line([tuple(p) for p in points], 255, pen)
    elif kind == "hatch":
        for k in range(-2, 3):
            draw.line(
                [(c[0] - r, c[1] + k * r / 3), (c[0] + r, c[1] + k * r / 3 + r / 2)], 255, pen
            )
            draw.line(
                [(c[0] + k * r / 3, c[1] - r), (c[0] + k * r / 3 - r / 2, c[1] + r)], 255, pen
            )
    else:  # a wavy line
        t = np.linspace(-1, 1, 60)
        draw.line(
            list(zip(c[0] + t * r * 1.3, c[1] + 0.3 * r * np.sin(t * 9), strict=True)), 255, pen
        )
    ink = np.asarray(image, np.float32) / 255
    rows, cols = np.flatnonzero(ink.any(1)), np.flatnonzero(ink.any(0))
    return np.pad(ink[rows[0] : rows[-1] + 1, cols[0] : cols[-1] + 1], 40)


DOODLES = ("smiley", "house", "heart", "sun", "tree", "spiral", "scribble", "hatch", "wave")


def fonts() -> list[str]:
    """The TrueType fonts matplotlib ships (regular, bold, oblique, serif, sans, mono)."""
    import matplotlib

    folder = Path(matplotlib.get_data_path()) / "fonts" / "ttf"
    names = (
        "DejaVuSans.ttf",
        "DejaVuSans-Bold.ttf",
        "DejaVuSans-Oblique.ttf",
        "DejaVuSerif.ttf",
        "DejaVuSerif-Italic.ttf",
        "DejaVuSansMono.ttf",
        "STIXGeneral.ttf",
        "STIXGeneralItalic.ttf",
        "cmr10.ttf",
    )
    return [str(folder / n) for n in names if (folder / n).is_file()]


SETS = ("gaps", "overlaps", "touching", "singles", "letters", "symbols", "doodles")


def write_sets(root: Path, data_dir: str, seed: int = 12345) -> dict[str, int]:
    """Every set under root/<set>/<what it reads>/: numbers of 2 to 6 MNIST test digits
    (150 with gaps, 40 overlapping, 40 touching), 200 single test digits, 104 letters,
    69 symbols, 90 doodles. Each test digit is used once. How many images each set has."""
    rng = np.random.default_rng(seed)
    images, labels = mnist_test(data_dir)
    order = iter(rng.permutation(len(labels)))
    counts = {}
    for spacing, n in (("gaps", 150), ("overlaps", 40), ("touching", 40)):
        for i in range(n):
            picked = [next(order) for _ in range(int(rng.integers(2, 7)))]
            name = "".join(str(int(labels[j])) for j in picked)
            ink = number_ink([images[j] for j in picked], spacing, rng)
            save(photo(ink, rng), root / spacing / name, f"n{i}", rng)
        counts[spacing] = n
    for i in range(200):
        j = next(order)
        big = Image.fromarray(images[j]).resize((112, 112), Image.BILINEAR)
        ink = np.pad(np.asarray(big, np.float32) / 255, 20)
        save(photo(ink, rng), root / "singles" / str(int(labels[j])), f"s{i}", rng)
    counts["singles"] = 200
    faces = fonts()
    for name, chars in (("letters", LETTERS * 2), ("symbols", SYMBOLS * 3)):
        for i, char in enumerate(chars):
            ink = glyph_ink(char, faces[i % len(faces)], rng)
            save(photo(ink, rng), root / name / "none", f"{name[0]}{i}_{ord(char)}", rng)
        counts[name] = len(chars)
    for i in range(90):
        kind = DOODLES[i % len(DOODLES)]
        save(photo(doodle_ink(kind, rng), rng), root / "doodles" / "none", f"d{i}_{kind}", rng)
    counts["doodles"] = 90
    return counts


PHOTO_SIZES = ((200, 200), (320, 240), (640, 480), (800, 600), (1024, 768), (1200, 900))
# The photo set, as it describes it: one digit each, 120x120 to 900x700.
SINGLE_PHOTO_SIZES = ((120, 120), (200, 150), (320, 240), (480, 360), (640, 480), (900, 700))


def photos(
    count: int, data_dir: str, seed: int = 7, single: bool = False
) -> list[tuple[bytes, str]]:
    """`count` photos of MNIST test digits written on paper, as (file bytes, what they
    read): pages of PHOTO_SIZES in turn, one digit or a number of 2 to 4 digits, the
    writing across 60% of the page, JPEG and PNG in turn. `single`: one digit each, on
    pages of SINGLE_PHOTO_SIZES."""
    import io

    rng = np.random.default_rng(seed)
    images, labels = mnist_test(data_dir)
    sizes = SINGLE_PHOTO_SIZES if single else PHOTO_SIZES
    made = []
    for i in range(count):
        digits = 1 if single or i % 2 == 0 else int(rng.integers(2, 5))
        picked = rng.integers(0, len(labels), digits)
        if len(picked) > 1:
            ink = number_ink([images[j] for j in picked], "gaps", rng)
        else:
            big = Image.fromarray(images[picked[0]]).resize((112, 112), Image.BILINEAR)
            ink = np.pad(np.asarray(big, np.float32) / 255, 20)
        width, height = sizes[i % len(sizes)]
        scale = min(0.6 * width / ink.shape[1], 0.6 * height / ink.shape[0])
        size = (max(1, int(ink.shape[1] * scale)), max(1, int(ink.shape[0] * scale)))
        writing = Image.fromarray((ink * 255).astype(np.uint8)).resize(size, Image.BILINEAR)
        page = np.zeros((height, width), np.float32)
        top, left = (height - size[1]) // 2, (width - size[0]) // 2
        page[top : top + size[1], left : left + size[0]] = np.asarray(writing, np.float32) / 255
        buffer = io.BytesIO()
        if i % 4 < 2:
            photo(page, rng).convert("RGB").save(buffer, format="JPEG", quality=88)
        else:
            photo(page, rng).convert("RGB").save(buffer, format="PNG")
        made.append((buffer.getvalue(), "".join(str(int(labels[j])) for j in picked)))
    return made
