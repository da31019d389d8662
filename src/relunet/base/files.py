"""Plain files done safely: JSON reads that name the file, atomic writes, locks.

A leaf module: no TensorFlow and nothing else of relunet but its errors, so every
other module (run dirs, backups, the data cache, searches, exports) can use it.
An atomic write goes to a temporary file beside its target, is fsynced and renamed
into place, and the folder is fsynced: a reader, or a rerun after a crash, sees the
old file or the new one, never half of one.
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import json
import os
import socket
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from relunet.base.errors import RelunetError

TMP_PREFIX = "tmp-"  # what a writer names its temporaries; nobody reads them


def read_json(path: str | os.PathLike, expect: type | None = None) -> Any:
    """The JSON in `path`; RelunetError naming the file if it cannot be read or parsed,
    or (with `expect`) holds something other than that type."""
    try:
        value = json.loads(Path(path).read_text())
    except (OSError, ValueError) as error:
        raise RelunetError(f"{path} cannot be read ({error}).") from None
    if expect is not None and not isinstance(value, expect):
        raise RelunetError(
            f"{path} holds a JSON {type(value).__name__}, not the "
            f"{expect.__name__} relunet writes there."
        )
    return value


def write_json_atomic(path: str | os.PathLike, data: Any) -> None:
    """Write JSON atomically (see write_text_atomic)."""
    write_text_atomic(path, json.dumps(data, indent=2, sort_keys=True) + "\n")


def write_text_atomic(path: str | os.PathLike, text: str) -> None:
    """Write `text` to `path` atomically; on failure no temporary is left behind and an
    OSError names the file."""
    path = Path(path)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f"{TMP_PREFIX}{path.name}.", suffix=".tmp")
    try:
        os.fchmod(fd, 0o666 & ~_UMASK)  # as open() would have made it, not mkstemp's 0600
        with os.fdopen(fd, "w") as f:
            f.write(text)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException as error:
        Path(tmp).unlink(missing_ok=True)
        if isinstance(error, OSError):
            error.filename = error.filename or str(path)
        raise
    fsync_dir(path.parent)


def move_into_place(tmp: str | os.PathLike, final: str | os.PathLike) -> None:
    """Fsync a finished temporary file and rename it to `final` atomically; on failure the
    temporary is removed and the OSError names `final`."""
    tmp, final = Path(tmp), Path(final)
    try:
        with open(tmp, "rb") as f:
            os.fsync(f.fileno())
        os.replace(tmp, final)
        fsync_dir(final.parent)
    except OSError as error:
        tmp.unlink(missing_ok=True)
        error.filename = error.filename or str(final)
        raise


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


_UMASK = _umask()


def fsync_dir(path: str | os.PathLike) -> None:
    """Make a rename inside `path` durable."""
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def remove_temporaries(folder: str | os.PathLike) -> None:
    """Remove the temporary files a killed writer left in `folder` (never read by anyone)."""
    for tmp in Path(folder).glob(f"{TMP_PREFIX}*"):
        if tmp.is_file():
            tmp.unlink(missing_ok=True)


def sha256_file(path: str | os.PathLike) -> str:
    """The sha256 of a file's bytes, read in blocks."""
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 22), b""):
            digest.update(block)
    return digest.hexdigest()


@contextlib.contextmanager
def hold_lock(path: str | os.PathLike, what: str) -> Iterator[None]:
    """Hold the lock file `path` for `what` while the block runs; refuse, naming the
    holder, if another process holds it. The kernel drops the lock when its process
    dies, however it dies, so a lock left by a killed process is simply taken over."""
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = os.pread(fd, 200, 0).decode(errors="replace").strip() or "another process"
            raise RelunetError(
                f"The {what} is in use by {holder}; wait for it to finish or stop it first."
            ) from None
        os.ftruncate(fd, 0)
        os.pwrite(
            fd,
            f"process {os.getpid()} on {socket.gethostname()} since "
            f"{time.strftime('%Y-%m-%d %H:%M:%S')}".encode(),
            0,
        )
        yield
    finally:
        os.close(fd)  # releases the lock


def is_locked(path: str | os.PathLike) -> bool:
    """Whether a process holds the lock file `path` (asked without taking it for long)."""
    try:
        fd = os.open(path, os.O_RDONLY)
    except OSError:
        return False
    try:
        fcntl.flock(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)
        return False
    except BlockingIOError:
        return True
    finally:
        os.close(fd)
