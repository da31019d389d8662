"""28x28 digits from .npy files, read and checked with NumPy alone: a wrong file is
answered before TensorFlow is imported, and a file of a few bytes that declares
terabytes is refused before it is read."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from relunet.base.errors import RelunetError
from relunet.base.mnist import IMAGE_SIZE, INPUT_SHAPE, PIXEL_MAX


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
    # Floats are intensities normalised to 0..1, integers 0..255: the type says which, not
    # the values (one float just over 1 would turn a whole file into 0..255).
    floats = np.issubdtype(array.dtype, np.floating)
    top = 1 if floats else PIXEL_MAX
    if not (array.size and array.min() >= 0 and array.max() <= top):
        raise RelunetError(
            f"{path} holds values outside {'0..1 (floats)' if floats else '0..255 (integers)'}"
            "; expected pixel intensities: uint8 0..255, or floats in 0..1."
        )
    return np.rint(array * PIXEL_MAX).astype(np.uint8) if floats else array.astype(np.uint8)


def _check_npy_header(path: Path) -> None:
    """Read what a .npy file's header declares (shape and type) before the array itself,
    and refuse an array that is not 28x28 images, or larger than the file holds: a file
    of a few bytes can declare terabytes, which np.load would try to allocate. The one
    check of a .npy file's shape."""
    with open(path, "rb") as f:
        try:
            version = np.lib.format.read_magic(f)
        except ValueError:
            f.seek(0)
            if f.read(4) == b"PK\x03\x04":
                return  # an .npz archive: np.load opens it, and read_npy_images says so
            raise RelunetError(
                f"{path} is not a .npy file (it does not begin with NumPy's header); save "
                "an array of images with numpy.save."
            ) from None
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
