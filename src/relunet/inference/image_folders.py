"""Folders of labelled image files, the layout `relunet evaluate --images` reads: each
subfolder named after what its images should read. Listed and checked without
TensorFlow, so a wrong folder is answered before TensorFlow is imported."""

from __future__ import annotations

import os
import re
from pathlib import Path

from relunet.base.errors import RelunetError
from relunet.base.mnist import MAX_DIGITS

# image_dataset_from_directory's, and WebP, which relunet reads as it reads the others
IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".gif", ".bmp", ".webp")


NOTHING = "none"  # the subfolder of images in which nothing should be read
# A number as the reader writes it: digits, a decimal point between two of them, a minus
# sign before them all (`42`, `3.14`, `-5`, `-0.25`).
NUMBER = re.compile(r"-?[0-9]+(\.[0-9]+)?")


def labelled_image_files(folder: str | Path) -> list[tuple[Path, str]]:
    """(file, what it should read) for every image in `folder`'s subfolders: a subfolder
    is named after what its images should read, a digit (0 to 9, the layout of
    `keras.utils.image_dataset_from_directory`) or a number (`42`, `2026`, `3.14`, `-5`),
    or `none` for images in which nothing should be read as digits. Files of other types
    are passed over, as Keras passes them. RelunetError naming the problem: not a folder,
    a subfolder named otherwise, an image outside the subfolders, a file that cannot be
    read, no images."""
    folder = Path(folder)
    if not folder.is_dir():
        raise RelunetError(f"The image folder {folder} does not exist or is not a folder.")
    found, hidden = [], []
    for entry in sorted(folder.iterdir()):
        if entry.name.startswith("."):
            hidden += [entry.name] if entry.is_dir() else []
            continue
        if entry.is_file() and entry.suffix.lower() in IMAGE_SUFFIXES:
            raise RelunetError(
                f"{entry} lies outside the subfolders; put each image in the subfolder of "
                "what it should read (a digit, a number, or none)."
            )
        if not entry.is_dir():
            continue
        name = entry.name
        if name != NOTHING and not _is_number(name):
            raise RelunetError(
                f"The image folder {folder} has a subfolder {name!r}; a subfolder is named "
                f"after what its images should read: a digit or a number of up to "
                f"{MAX_DIGITS} digits (0 to 9 each, with a decimal point or a leading minus "
                "sign as in 3.14 or -5), or none."
            )
        images = _images_under(entry)
        if not images:
            raise RelunetError(
                f"The subfolder {entry} holds no images ({', '.join(IMAGE_SUFFIXES)} files); "
                "remove it or put in it the images it names."
            )
        found += [(path, name) for path in images]
    if not found:
        passed = f"; {', '.join(hidden)} passed over, as hidden (a dot first)" if hidden else ""
        raise RelunetError(
            f"The image folder {folder} holds no images ({', '.join(IMAGE_SUFFIXES)} files in "
            f"subfolders named after what they should read{passed})."
        )
    return found


def one_digit(label: str) -> bool:
    """A subfolder of one-digit images (0 to 9): the ones evaluate's report covers."""
    return len(label) == 1


def _is_number(name: str) -> bool:
    return bool(NUMBER.fullmatch(name)) and sum(c.isdigit() for c in name) <= MAX_DIGITS


def _images_under(folder: Path) -> list[Path]:
    """Every image file below `folder`, each checked readable, through links to folders
    as the label folders' own links are followed (each folder read once). Hidden entries
    (a dot first: `.ipynb_checkpoints`, macOS's `._x.png`) are passed over, as they are
    beside the label folders. Nothing else is passed over in silence: a folder that
    cannot be listed, a link to nothing, or an entry named as an image that is not a file
    (a folder, a pipe) is refused like a file that cannot be read, so the count the
    report gives is the count the folder holds."""

    def refuse(error: OSError) -> None:
        raise RelunetError(f"{error.filename} cannot be read ({error.strerror}).") from None

    images, read = [], set()
    for root, folders, names in os.walk(folder, onerror=refuse, followlinks=True):
        real = os.path.realpath(root)
        if real in read:  # a link back to a folder already read
            folders.clear()
            continue
        read.add(real)
        folders[:] = sorted(f for f in folders if not f.startswith("."))
        shown = [*names, *(f for f in folders if Path(root, f).is_symlink())]
        for name in sorted(n for n in shown if not n.startswith(".")):
            path = Path(root, name)
            if path.is_symlink() and not path.exists():  # a file or a folder of images, gone
                raise RelunetError(f"{path} is a link to nothing ({os.readlink(path)}).")
            if path.suffix.lower() not in IMAGE_SUFFIXES:
                continue
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
