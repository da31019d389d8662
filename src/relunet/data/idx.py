"""Read, validate and write the IDX files that MNIST, Fashion-MNIST and KMNIST ship as.

Format (LeCun's MNIST page): a big-endian int32 magic number (2051 for images,
2049 for labels), an int32 item count, for images int32 rows and columns, then
one unsigned byte per pixel or label. Every check here runs before anything is
written, so a bad file is reported by name and leaves nothing half-prepared.
"""

from __future__ import annotations

import gzip
import hashlib
import os
import struct
import zlib
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from relunet.base.errors import RelunetError
from relunet.base.mnist import IMAGE_SIZE, NUM_CLASSES

IMAGE_MAGIC = 2051
LABEL_MAGIC = 2049

# The four files, by split, without their optional .gz suffix.
FILES = {
    "train": ("train-images-idx3-ubyte", "train-labels-idx1-ubyte"),
    "test": ("t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte"),
}

# sha256 of the uncompressed genuine MNIST files (the same values as the SHA256SUMS
# that ships beside the files): a match lets the loader tell the user what they have.
GENUINE_MNIST_SHA256 = {
    "train-images-idx3-ubyte": "ba891046e6505d7aadcbbe25680a0738ad16aec93bde7f9b65e87a2fc25776db",
    "train-labels-idx1-ubyte": "65a50cbbf4e906d70832878ad85ccda5333a97f0f4c3dd2ef09a8a9eef7101c5",
    "t10k-images-idx3-ubyte": "0fa7898d509279e482958e8ce81c8e77db3f2f8254e26661ceb7762c4d494ce7",
    "t10k-labels-idx1-ubyte": "ff7bcfd416de33731a308c3f266cc351222c34898ecbeaf847f06e48f7ec33f2",
}


@dataclass
class IdxSplit:
    images: np.ndarray  # uint8 [n, 28, 28, 1]
    labels: np.ndarray  # uint8 [n]


@dataclass
class IdxFolder:
    """The validated content of a folder of the four IDX files."""

    folder: Path
    splits: dict[str, IdxSplit]
    sha256: dict[str, str]  # file stem -> sha256 of its uncompressed bytes

    @property
    def fingerprint(self) -> str:
        """One digest of all four files' content, used to tell prepared copies apart."""
        joined = "".join(self.sha256[stem] for pair in FILES.values() for stem in pair)
        return hashlib.sha256(joined.encode()).hexdigest()

    @property
    def is_genuine_mnist(self) -> bool:
        return self.sha256 == GENUINE_MNIST_SHA256


def read_folder(folder: str | os.PathLike) -> IdxFolder:
    """Read and validate all four IDX files in `folder` (plain or .gz)."""
    folder = Path(folder)
    if not folder.is_dir():
        raise RelunetError(f"The data dir {folder} does not exist or is not a folder.")
    splits, digests = {}, {}
    for split, (image_stem, label_stem) in FILES.items():
        image_path, label_path = find_file(folder, image_stem), find_file(folder, label_stem)
        image_bytes, label_bytes = _read_bytes(image_path), _read_bytes(label_path)
        images = parse_images(image_bytes, image_path)
        labels = parse_labels(label_bytes, label_path)
        if not len(images):
            raise RelunetError(
                f"{image_path.name} in {folder} holds no images; the {split} "
                "split needs at least one."
            )
        if len(images) != len(labels):
            raise RelunetError(
                f"{image_path.name} in {folder} holds {len(images)} images but "
                f"{label_path.name} holds {len(labels)} labels; the counts must agree."
            )
        splits[split] = IdxSplit(images, labels)
        digests[image_stem] = hashlib.sha256(image_bytes).hexdigest()
        digests[label_stem] = hashlib.sha256(label_bytes).hexdigest()
    _check_sums_file(folder, digests)
    return IdxFolder(folder, splits, digests)


def find_file(folder: Path, stem: str) -> Path:
    """The file `stem` or `stem.gz` in `folder`; the uncompressed one wins if both exist."""
    for candidate in (folder / stem, folder / f"{stem}.gz"):
        if candidate.is_file():
            return candidate
    raise RelunetError(
        f"The data dir {folder} has no {stem} or {stem}.gz; it needs the four MNIST-format "
        f"IDX files: {', '.join(s for pair in FILES.values() for s in pair)} (each may be .gz)."
    )


def parse_images(data: bytes, path: Path) -> np.ndarray:
    """Images as uint8 [n, 28, 28, 1] from the bytes of an idx3 file."""
    count = _header(data, path, 16, IMAGE_MAGIC, "images")
    rows, cols = (int(x) for x in np.frombuffer(data, ">i4", count=2, offset=8))
    if (rows, cols) != (IMAGE_SIZE, IMAGE_SIZE):
        raise RelunetError(
            f"{path} holds {rows}x{cols} images; expected {IMAGE_SIZE}x{IMAGE_SIZE}."
        )
    _check_length(data, path, 16 + count * rows * cols)
    pixels = np.frombuffer(data, np.uint8, offset=16)
    return pixels.reshape(count, rows, cols, 1)


def parse_labels(data: bytes, path: Path) -> np.ndarray:
    """Labels as uint8 [n] in 0..9 from the bytes of an idx1 file."""
    count = _header(data, path, 8, LABEL_MAGIC, "labels")
    _check_length(data, path, 8 + count)
    labels = np.frombuffer(data, np.uint8, offset=8)
    if count and labels.max() >= NUM_CLASSES:
        raise RelunetError(f"{path} holds the label {int(labels.max())}; labels must lie in 0..9.")
    return labels


def write_images(path: Path, images: np.ndarray) -> None:
    """Write uint8 [n, 28, 28(, 1)] images as a gzipped idx3 file."""
    images = np.asarray(images, np.uint8).reshape(len(images), IMAGE_SIZE, IMAGE_SIZE)
    header = np.array([IMAGE_MAGIC, len(images), IMAGE_SIZE, IMAGE_SIZE], ">i4").tobytes()
    _write_gz(path, header + images.tobytes())


def write_labels(path: Path, labels: np.ndarray) -> None:
    """Write uint8 [n] labels as a gzipped idx1 file."""
    labels = np.asarray(labels, np.uint8)
    _write_gz(path, np.array([LABEL_MAGIC, len(labels)], ">i4").tobytes() + labels.tobytes())


def greyscale_png(image: np.ndarray) -> bytes:
    """A uint8 [h, w] or [h, w, 1] image as a greyscale PNG file, without TensorFlow: the
    bytes the tfds builder stores (about 25 us an image, where tfds would run
    TensorFlow's encode_png eagerly, about 90 us, 70,000 times a preparation)."""
    height, width = image.shape[:2]
    rows = np.zeros((height, width + 1), np.uint8)  # each row: filter type 0, its pixels
    rows[:, 1:] = image.reshape(height, width)
    header = struct.pack(">IIBBBBB", width, height, 8, 0, 0, 0, 0)  # 8-bit grey, no interlace
    chunks = (
        _chunk(b"IHDR", header),
        _chunk(b"IDAT", zlib.compress(rows.tobytes())),
        _chunk(b"IEND", b""),
    )
    return b"\x89PNG\r\n\x1a\n" + b"".join(chunks)


def _chunk(kind: bytes, data: bytes) -> bytes:
    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))


def _read_bytes(path: Path) -> bytes:
    if path.suffix != ".gz":
        return path.read_bytes()
    try:
        return gzip.decompress(path.read_bytes())
    except (gzip.BadGzipFile, EOFError, zlib.error) as error:
        raise RelunetError(f"{path} is not a readable gzip file ({error}).") from None


def _header(data: bytes, path: Path, size: int, magic: int, kind: str) -> int:
    """Check the magic number and return the item count."""
    if len(data) < size:
        raise RelunetError(f"{path} is too short ({len(data)} bytes) for an IDX header.")
    found, count = (int(x) for x in np.frombuffer(data, ">i4", count=2))
    if found != magic:
        raise RelunetError(
            f"{path} has the magic number {found}; an IDX file of {kind} has {magic}."
        )
    return count


def _check_length(data: bytes, path: Path, expected: int) -> None:
    if len(data) != expected:
        raise RelunetError(
            f"{path} is {len(data)} bytes but its header promises {expected}; "
            "the file is truncated or padded."
        )


def _check_sums_file(folder: Path, digests: dict[str, str]) -> None:
    """If the folder carries a SHA256SUMS file, every file it names must match it."""
    sums = folder / "SHA256SUMS"
    if not sums.is_file():
        return
    try:
        text = sums.read_text(encoding="ascii")
    except (UnicodeDecodeError, OSError) as error:
        raise RelunetError(
            f"{sums} is not a text list of sha256 sums ({error}); fix or remove it."
        ) from None
    for line in text.splitlines():
        parts = line.split()
        if len(parts) != 2:
            continue
        expected, name = parts[0], parts[1].lstrip("*")
        stem = name.removesuffix(".gz")
        if stem in digests and digests[stem] != expected:
            raise RelunetError(
                f"{stem} in {folder} does not match its sha256 in {sums.name}; "
                "the file is corrupt or was replaced."
            )


def _write_gz(path: Path, payload: bytes) -> None:
    # mtime=0 keeps the output byte-identical from run to run.
    with open(path, "wb") as raw, gzip.GzipFile(fileobj=raw, mode="wb", mtime=0) as gz:
        gz.write(payload)
