"""Images from .npy files and folders of labelled image files, read and checked without
TensorFlow: a wrong file is answered before TensorFlow is imported."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from relunet.errors import RelunetError
from relunet.mnist import IMAGE_SIZE, INPUT_SHAPE, NUM_CLASSES, PIXEL_MAX


def read_npy_images(path: Path) -> np.ndarray:
    """uint8 [n, 28, 28, 1] from a .npy file of 28x28 images ([28, 28], [n, 28, 28] or
    [n, 28, 28, 1]; uint8 0..255 or floats in 0..1); RelunetError saying what it holds
    otherwise."""
    if path.stat().st_size == 0:
        raise RelunetError(f"{path} is empty (0 bytes): not a .npy array.")
    try:
        array = np.load(path, allow_pickle=False)
    except (ValueError, OSError, EOFError) as error:
        reason = " ".join(str(error).split())[:160]
        raise RelunetError(f"{path} cannot be read as a .npy array ({reason}).") from None
    if isinstance(array, np.lib.npyio.NpzFile):
        array.close()
        raise RelunetError(
            f"{path} is an .npz archive, not a .npy array; save one array of "
            "images with numpy.save."
        )
    kind = {
        "b": "booleans",
        "c": "complex numbers",
        "U": "strings",
        "S": "bytes",
        "O": "Python objects",
        "V": "records",
        "M": "dates",
        "m": "time spans",
    }
    if array.dtype.kind in kind:
        raise RelunetError(
            f"{path} holds {kind[array.dtype.kind]} ({array.dtype}); expected "
            "pixel intensities (uint8 0..255, or floats in 0..1)."
        )
    shape = array.shape
    if array.ndim in (2, 3) and array.shape[-2:] == (IMAGE_SIZE, IMAGE_SIZE):
        array = array[..., None]
    if array.ndim == 3:
        array = array[None]
    if array.ndim != 4 or array.shape[1:] != INPUT_SHAPE or len(array) == 0:
        raise RelunetError(
            f"{path} has shape {shape}; expected 28x28 images "
            "as [28, 28], [n, 28, 28] or [n, 28, 28, 1]."
        )
    if np.issubdtype(array.dtype, np.floating) and array.min() >= 0 and array.max() <= 1:
        return np.rint(array * PIXEL_MAX).astype(np.uint8)  # already normalised to [0, 1]
    if np.issubdtype(array.dtype, np.number) and array.min() >= 0 and array.max() <= PIXEL_MAX:
        return array.astype(np.uint8)
    raise RelunetError(
        f"{path} holds values outside 0..255 (or 0..1 for floats); expected pixel intensities."
    )


IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".gif", ".bmp")  # image_dataset_from_directory's


def labelled_image_files(folder: str | Path) -> list[tuple[Path, int]]:
    """(file, digit) for every image in `folder`'s subfolders 0 to 9, the layout of
    `keras.utils.image_dataset_from_directory`; files of other types are passed over, as
    Keras passes them. RelunetError naming the problem: not a folder, a subfolder that is
    not a digit, an image outside the subfolders, a file that cannot be read, no images."""
    folder = Path(folder)
    if not folder.is_dir():
        raise RelunetError(f"The image folder {folder} does not exist or is not a folder.")
    found = []
    for entry in sorted(folder.iterdir()):
        if entry.name.startswith("."):
            continue
        if entry.is_file() and entry.suffix.lower() in IMAGE_SUFFIXES:
            raise RelunetError(
                f"{entry} lies outside the subfolders; put each image in the subfolder of "
                "its digit (0 to 9)."
            )
        if not entry.is_dir():
            continue
        if entry.name not in [str(d) for d in range(NUM_CLASSES)]:
            raise RelunetError(
                f"The image folder {folder} has a subfolder {entry.name!r}; its subfolders "
                f"must be named after digits, 0 to {NUM_CLASSES - 1}."
            )
        for path in sorted(entry.rglob("*")):
            if path.is_file() and path.suffix.lower() in IMAGE_SUFFIXES:
                _check_readable(path)
                found.append((path, int(entry.name)))
    if not found:
        raise RelunetError(
            f"The image folder {folder} holds no images ({', '.join(IMAGE_SUFFIXES)} files in "
            f"subfolders named 0 to {NUM_CLASSES - 1})."
        )
    return found


def _check_readable(path: Path) -> None:
    try:
        with open(path, "rb") as f:
            head = f.read(1)
    except OSError as error:
        raise RelunetError(f"{path} cannot be read ({error.strerror}).") from None
    if not head:
        raise RelunetError(f"{path} is empty (0 bytes): not an image.")
