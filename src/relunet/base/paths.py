"""What a path names, checked without TensorFlow: output folders that can be written,
models (a `.keras` file, a run dir, a SavedModel version or a folder of versions) and
folders of SavedModel versions. Each check raises RelunetError with one sentence that
names the path, so a wrong one is answered before anything is imported or written.
"""

from __future__ import annotations

import os
import stat
import zipfile
from pathlib import Path

from relunet.base.errors import RelunetError

SAVED_MODEL = "saved_model.pb"


def saved_model_versions(folder: str | os.PathLike) -> dict[int, Path]:
    """The SavedModel versions in a folder of versions (numbered folders holding a
    saved_model.pb, as relunet export writes and TF Serving reads), oldest first."""
    found = {}
    for path in Path(folder).iterdir():
        if path.name.isdigit() and (path / SAVED_MODEL).is_file():
            found[int(path.name)] = path
    return dict(sorted(found.items()))


def check_versions_folder(folder: str | os.PathLike) -> dict[int, Path]:
    """A folder of SavedModel versions to serve: refused, by name, if it is not one."""
    folder = Path(folder)
    if not folder.is_dir():
        raise RelunetError(f"The model folder {folder} does not exist or is not a folder.")
    if (folder / SAVED_MODEL).is_file():
        if folder.name.isdigit() and int(folder.name) > 0:
            raise RelunetError(
                f"{folder} is one SavedModel version; serve the folder of versions "
                f"that holds it ({folder.parent})."
            )
        raise RelunetError(
            f"{folder} is one SavedModel, not a folder of numbered versions; relunet serves "
            "what `relunet export --model MODEL --out DIR` writes (DIR/1, DIR/2, ...)."
        )
    versions = saved_model_versions(folder)
    if not versions:
        raise no_versions(folder)
    return versions


def no_versions(folder: str | os.PathLike) -> RelunetError:
    return RelunetError(
        f"{folder} holds no SavedModel versions (numbered folders with a "
        f"{SAVED_MODEL}, as relunet export writes)."
    )


def check_folder(path: str | os.PathLike | None, what: str) -> None:
    """An existing folder to read from (None: not given)."""
    if path is not None and not Path(path).is_dir():
        raise RelunetError(f"The {what} {path} does not exist or is not a folder.")


def check_new_output_dir(path: str | os.PathLike, what: str, flag: str) -> None:
    """A folder to write into that holds nothing yet (or does not exist)."""
    check_output_dir(path, what)
    path = Path(path)
    if path.is_dir() and any(path.iterdir()):
        raise RelunetError(f"The {what} {path} already holds something; pick a new {flag}.")


def check_output_dir(path: str | os.PathLike, what: str) -> None:
    """Refuse, before any work, a folder that cannot be created or written: under a file,
    on a read-only file system, behind a symlink loop or a dangling symlink."""
    path = Path(path)
    for candidate in (path, *path.parents):
        try:
            mode = candidate.stat().st_mode
        except NotADirectoryError:  # somewhere below a file: the walk up finds which
            continue
        except FileNotFoundError:
            if candidate.is_symlink():
                raise RelunetError(
                    f"The {what} {path} cannot be created: {candidate} is a symlink to nothing."
                ) from None
            continue
        except OSError as error:  # ELOOP, ENOTDIR, EACCES ...
            raise RelunetError(
                f"The {what} {path} cannot be used: {candidate}: {error.strerror}."
            ) from None
        if not stat.S_ISDIR(mode):
            if candidate == path:
                raise RelunetError(f"The {what} {path} is a file, not a folder.")
            raise RelunetError(
                f"The {what} {path} cannot be created: {candidate} is a file, not a folder."
            )
        if not os.access(candidate, os.W_OK | os.X_OK):
            raise RelunetError(
                f"The {what} {path} cannot be written: {candidate} is read-only "
                "(or not ours to write)."
            )
        return


def resolve_model_path(path: str | os.PathLike) -> Path:
    """The model a path means: a `.keras` file, a run dir (its best.keras), a SavedModel
    version folder, or a folder of versions (its newest, as TF Serving picks).
    RelunetError if it names none; no TensorFlow needed, so a wrong path is answered at
    once."""
    if path is None:  # a config made in Python without its model
        raise RelunetError("No model was given: a run dir, a .keras file or a SavedModel.")
    path = Path(path)
    if not path.exists():
        raise RelunetError(f"The model path {path} does not exist.")
    if path.is_file():
        if path.suffix != ".keras":
            raise RelunetError(
                f"{path} is not a model: expected a .keras file or a SavedModel folder."
            )
        if path.stat().st_size == 0:
            raise RelunetError(f"{path} is empty (0 bytes): not a saved model.")
        if not zipfile.is_zipfile(path):  # a .keras file is a zip archive
            raise RelunetError(
                f"{path} cannot be loaded as a Keras model (it is not a .keras archive)."
            )
        return path
    if (path / SAVED_MODEL).is_file():
        return path
    if (path / "best.keras").is_file():
        return resolve_model_path(path / "best.keras")
    versions = saved_model_versions(path)
    if versions:
        return versions[max(versions)]
    raise RelunetError(
        f"{path} is not a model: no saved_model.pb, best.keras or numbered "
        "SavedModel versions in it."
    )
