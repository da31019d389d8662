"""Images from .npy files and folders of labelled image files, read and checked without
TensorFlow: a wrong file is answered before TensorFlow is imported."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np

from relunet.base.errors import RelunetError
from relunet.base.mnist import IMAGE_SIZE, INPUT_SHAPE, MAX_DIGITS, PIXEL_MAX


def read_npy_images(path: Path) -> np.ndarray:
    """uint8 [n, 28, 28, 1] from a .npy file of 28x28 images ([28, 28], [n, 28, 28] or
    [n, 28, 28, 1]; uint8 0..255 or floats in 0..1); RelunetError saying what it holds
    otherwise."""
    if path.stat().st_size == 0:
        raise RelunetError(f"{path} is empty (0 bytes): not a .npy array.")
    _check_npy_header(path)
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
    array = array.reshape((-1, *INPUT_SHAPE))  # the header's shape is one of the three
    if np.issubdtype(array.dtype, np.floating) and array.min() >= 0 and array.max() <= 1:
        return np.rint(array * PIXEL_MAX).astype(np.uint8)  # already normalised to [0, 1]
    if np.issubdtype(array.dtype, np.number) and array.min() >= 0 and array.max() <= PIXEL_MAX:
        return array.astype(np.uint8)
    raise RelunetError(
        f"{path} holds values outside 0..255 (or 0..1 for floats); expected pixel intensities."
    )


def _check_npy_header(path: Path) -> None:
    """Read what a .npy file's header declares (shape and type) before the array itself,
    and refuse an array that is not 28x28 images, or larger than the file holds: a file
    of a few bytes can declare terabytes, which np.load would try to allocate. The one
    check of a .npy file's shape."""
    with open(path, "rb") as f:
        try:
            version = np.lib.format.read_magic(f)
        except ValueError:
            return  # not a .npy file at all (an .npz, say): np.load says what it is
        try:
            if version == (1, 0):
                shape, _, dtype = np.lib.format.read_array_header_1_0(f)
            else:
                shape, _, dtype = np.lib.format.read_array_header_2_0(f)
        except (ValueError, OSError) as error:
            reason = " ".join(str(error).split())[:160]
            raise RelunetError(f"{path} cannot be read as a .npy array ({reason}).") from None
        holds = path.stat().st_size - f.tell()
    declared = int(np.prod(shape, dtype=object)) * dtype.itemsize
    images = {2: shape == (IMAGE_SIZE, IMAGE_SIZE), 3: shape[1:] == (IMAGE_SIZE, IMAGE_SIZE)}
    images[4] = shape[1:] == INPUT_SHAPE
    if not images.get(len(shape)) or 0 in shape:
        raise RelunetError(
            f"{path} has shape {tuple(shape)}; expected 28x28 images "
            "as [28, 28], [n, 28, 28] or [n, 28, 28, 1]."
        )
    if declared > holds:
        raise RelunetError(
            f"{path} declares an array of {declared:,} bytes {tuple(shape)} but holds "
            f"{holds:,}: it is cut short or its header is wrong."
        )


IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".gif", ".bmp")  # image_dataset_from_directory's


NOTHING = "none"  # the subfolder of images in which nothing should be read


def labelled_image_files(folder: str | Path) -> list[tuple[Path, str]]:
    """(file, what it should read) for every image in `folder`'s subfolders: a subfolder
    is named after what its images should read, a digit (0 to 9, the layout of
    `keras.utils.image_dataset_from_directory`) or a number (`42`, `2026`), or `none`
    for images in which nothing should be read as digits. Files of other types are passed
    over, as Keras passes them. RelunetError naming the problem: not a folder, a
    subfolder named otherwise, an image outside the subfolders, a file that cannot be
    read, no images."""
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
                "what it should read (a digit, a number, or none)."
            )
        if not entry.is_dir():
            continue
        name = entry.name
        if name != NOTHING and not (name.isascii() and name.isdigit() and len(name) <= MAX_DIGITS):
            raise RelunetError(
                f"The image folder {folder} has a subfolder {name!r}; a subfolder is named "
                f"after what its images should read: a digit or a number of up to "
                f"{MAX_DIGITS} digits (0 to 9 each), or none."
            )
        images = _images_under(entry)
        if not images:
            raise RelunetError(
                f"The subfolder {entry} holds no images ({', '.join(IMAGE_SUFFIXES)} files); "
                "remove it or put in it the images it names."
            )
        found += [(path, name) for path in images]
    if not found:
        raise RelunetError(
            f"The image folder {folder} holds no images ({', '.join(IMAGE_SUFFIXES)} files in "
            "subfolders named after what they should read)."
        )
    return found


def _images_under(folder: Path) -> list[Path]:
    """Every image file below `folder`, each checked readable. Nothing is passed over in
    silence: a folder that cannot be listed, a link to nothing, or an entry named as an
    image that is not a file (a folder, a pipe) is refused like a file that cannot be
    read, so the count the report gives is the count the folder holds."""

    def refuse(error: OSError) -> None:
        raise RelunetError(f"{error.filename} cannot be read ({error.strerror}).") from None

    images = []
    for root, folders, names in os.walk(folder, onerror=refuse):
        folders.sort()
        for name in sorted([*names, *(f for f in folders if Path(root, f).is_symlink())]):
            path = Path(root, name)
            if path.suffix.lower() not in IMAGE_SUFFIXES:
                continue
            if path.is_symlink() and not path.exists():
                raise RelunetError(f"{path} is a link to nothing ({os.readlink(path)}).")
            if not path.is_file():
                raise RelunetError(f"{path} is named as an image but is not a file.")
            _check_readable(path)
            images.append(path)
    return images


def _check_readable(path: Path) -> None:
    try:
        with open(path, "rb") as f:
            head = f.read(1)
    except OSError as error:
        raise RelunetError(f"{path} cannot be read ({error.strerror}).") from None
    if not head:
        raise RelunetError(f"{path} is empty (0 bytes): not an image.")
