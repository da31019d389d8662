"""Where the MNIST-style examples come from, as far as it can be told without tfds.

A prepared tfds dataset is a folder (`<tfds_dir>/<name>/<version>`, its
`dataset_info.json` written last), so finding one needs no tensorflow-datasets; a copy
made from IDX files records which files (their sizes and times, and the sha256 of
their content), so an unchanged folder is not read again. What has to be prepared is
`relunet.data.prepare`'s job, which imports tensorflow-datasets to do it; the command line
checks a data dir here (`check_idx_folder`) before anything heavy is imported.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

from relunet.base.errors import RelunetError
from relunet.base.files import read_json, write_json_atomic
from relunet.data import idx

SOURCE_RECORD = "relunet_source.json"  # beside a mnist_idx copy: the IDX files it came from


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


def already_prepared(dataset: str, data_dir: str | None, tfds_dir: str) -> Source | None:
    """The source, if a prepared copy answers without reading anything big; else None."""
    if prepared_dir(tfds_dir, dataset):
        return Source(dataset, tfds_dir, f"tfds '{dataset}' already prepared in {tfds_dir}")
    name = f"mnist_idx/{dataset}"
    local = prepared_dir(tfds_dir, name)
    if local is None:
        return None
    if not data_dir:
        return Source(name, tfds_dir, f"tfds '{name}' already prepared in {tfds_dir}")
    record = local / SOURCE_RECORD
    try:
        made_from = read_json(record, expect=dict)
    except RelunetError:
        return None
    if made_from.get("files") != file_stats(Path(data_dir)):
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
    if data_dir and already_prepared(dataset, data_dir, tfds_dir) is None:
        idx.read_folder(data_dir)


def file_stats(folder: Path) -> dict[str, list[int]] | None:
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


def record_files(prepared: str | os.PathLike, folder: idx.IdxFolder) -> None:
    """Note beside the prepared copy which files it was made from, as they are now."""
    write_json_atomic(
        Path(prepared) / SOURCE_RECORD,
        {
            "folder": str(folder.folder.resolve()),
            "fingerprint": folder.fingerprint,
            "genuine": folder.is_genuine_mnist,
            "files": file_stats(folder.folder),
        },
    )
