"""The served model: a folder of numbered SavedModel versions, their labels, and each
version's signatures as functions of NumPy batches.

The folder is looked at again when its modification time changes, and at least once
a second, as TF Serving polls its file system. A version is served once it loads whole
(its saved_model.pb parses, its variables restore, its signatures pass the checks and
have each run once on a warm-up input); a
folder still being copied, or a broken one, fails to load, is reported in the status
with TF Serving's state and error fields, and is tried again only when its files
change, while the versions already loaded keep serving. Labels (`--label stable=1`)
name versions, as TF Serving's `version_labels`. The metadata answer is TF Serving's:
the SignatureDefs of `saved_model.pb` in protobuf's JSON with the proto field names
(`tensor_shape`, `method_name`) and every field written, defaults too (`"name": ""` in
each `dim`, `"unknown_rank": false`, `"defaults": {}`), as its model servers print them.
"""

from __future__ import annotations

import os
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import tensorflow as tf

from relunet.base.errors import RelunetError
from relunet.base.paths import no_versions, saved_model_versions
from relunet.base.signatures import SIGNATURE
from relunet.inference.classifier import load_classifier
from relunet.serve.decode import BadRequest, InputSpec

RESCAN_SECONDS = 1.0  # TF Serving's --file_system_poll_wait_seconds default


@dataclass
class Signature:
    """One signature of one version, called on the inputs of one or more requests."""

    name: str
    function: Any  # the SavedModel's ConcreteFunction
    spec: InputSpec | None  # None: it does not take exactly one input

    @property
    def batchable(self) -> bool:
        """Whether requests can be joined along the first axis (any number of images)."""
        return self.spec is not None and bool(self.spec.shape) and self.spec.shape[0] is None

    def run(self, inputs: list[np.ndarray | list[bytes]]) -> list[dict[str, np.ndarray]]:
        """One model call on the requests' inputs, joined; each request's outputs."""
        sizes = [len(x) for x in inputs]
        if self.spec.dtype is None:
            joined = tf.constant([image for request in inputs for image in request], tf.string)
        else:
            joined = tf.constant(inputs[0] if len(inputs) == 1 else np.concatenate(inputs))
        try:
            outputs = self.function(**{self.spec.name: joined})
        except (tf.errors.InvalidArgumentError, ValueError) as error:
            raise BadRequest(f"The model could not run on this input: {_reason(error)}") from None
        outputs = {name: value.numpy() for name, value in outputs.items()}
        if len(inputs) == 1:
            return [outputs]
        if any(value.shape[:1] != (sum(sizes),) for value in outputs.values()):
            return [self.run([x])[0] for x in inputs]  # outputs not one per image: alone
        ends = np.cumsum(sizes)
        return [
            {name: value[end - size : end] for name, value in outputs.items()}
            for size, end in zip(sizes, ends, strict=True)
        ]


@dataclass
class Version:
    number: int
    path: Path
    loaded: Any  # the tf.saved_model.load result, kept alive with its variables
    signatures: dict[str, Signature]
    metadata: dict[str, Any]
    files: tuple = ()  # its folder's files when it was loaded (see _files)
    load_seconds: float = 0.0  # reading and restoring the SavedModel
    warm_up_seconds: float = 0.0  # every signature run once after that

    def signature(self, name: str | None) -> Signature:
        name = name or SIGNATURE
        if name not in self.signatures:
            raise BadRequest(
                f'Serving signature name: "{name}" not found in signature def; this '
                f"model has {', '.join(sorted(self.signatures))}."
            )
        return self.signatures[name]


@dataclass
class Unloadable:
    """A version folder that did not load: why, and its files as they were then (it is
    tried again once they change)."""

    number: int
    error: str
    files: tuple


class ModelFolder:
    """The numbered SavedModel versions in one folder, loaded once they are whole and
    unloaded once they are gone."""

    def __init__(
        self,
        folder: str | Path,
        name: str,
        trust_model: bool = False,
        labels: dict[str, int] | None = None,
    ):
        self.folder, self.name, self.trust_model = Path(folder), name, trust_model
        self.labels = dict(labels or {})
        self._versions: dict[int, Version] = {}
        self.unloadable: dict[int, Unloadable] = {}
        self._lock = threading.Lock()
        self._seen: tuple[int, float] | None = None  # (folder mtime, when) of the last scan
        if not self.refresh():
            if self.unloadable:  # no version loaded: the first reason is the user's answer
                raise RelunetError(next(iter(self.unloadable.values())).error)
            raise no_versions(self.folder)

    def refresh(self) -> dict[int, Version]:
        """Load any version that appeared, or changed since it failed, since the last
        look; return the loaded ones."""
        with self._lock:
            try:
                mtime = os.stat(self.folder).st_mtime_ns
            except FileNotFoundError:  # the folder itself moved away (a deploy's `mv`)
                mtime = None
            now = time.monotonic()
            if self._seen is None or self._seen[0] != mtime or now - self._seen[1] > RESCAN_SECONDS:
                on_disk = {} if mtime is None else saved_model_versions(self.folder)
                for number, path in on_disk.items():
                    loaded = self._versions.get(number)
                    if loaded is None or loaded.files != _files(path):  # new, or replaced
                        self._versions.pop(number, None)
                        self._try_to_load(number, path)
                for gone in (set(self._versions) | set(self.unloadable)) - set(on_disk):
                    self._versions.pop(gone, None)  # unloaded, as TF Serving unloads it
                    self.unloadable.pop(gone, None)
                self._seen = (mtime, now)
            return dict(self._versions)

    def _try_to_load(self, number: int, path: Path) -> None:
        files = _files(path)
        failed = self.unloadable.get(number)
        if failed is not None and failed.files == files:
            return  # nothing changed since it failed
        try:
            self._versions[number] = self._load(number, path)
            self._versions[number].files = files
            self.unloadable.pop(number, None)
        except Exception as error:  # any failure: a half-copied folder fails many ways
            reason = " ".join(str(error).split())[:300] or type(error).__name__
            self.unloadable[number] = Unloadable(number, reason, files)

    def version(self, number: int | None = None, label: str | None = None) -> Version:
        """The version a request names by number or label (the newest if neither)."""
        if label is not None:
            if label not in self.labels:
                raise BadRequest(f"Unrecognized servable version label: {label}")
            number = self.labels[label]
        versions = self.refresh()
        if not versions:
            raise BadRequest(f"No version of {self.name} is loaded now; see its status.", 503)
        if number is None:
            return versions[max(versions)]
        if number not in versions:
            failed = self.unloadable.get(number)
            why = f"; version {number} could not be loaded: {failed.error}" if failed else ""
            raise BadRequest(
                f"Servable not found for request: Specific({self.name}, {number}){why}", 404
            )
        return versions[number]

    def _load(self, number: int, path: Path) -> Version:
        start = time.perf_counter()
        loaded = load_classifier(path, trust_model=self.trust_model).saved_model  # and checks
        signatures = {
            name: Signature(name, function, _input_spec(function))
            for name, function in loaded.signatures.items()
        }
        read = time.perf_counter()
        for signature in signatures.values():
            _warm_up(signature)
        version = Version(number, path, loaded, signatures, metadata(path, number, self.name))
        version.load_seconds, version.warm_up_seconds = read - start, time.perf_counter() - read
        return version


def warm_up_image() -> bytes:
    """A PNG of a stroke on paper: read as one digit."""
    page = np.full((40, 30, 1), 230, np.uint8)
    page[8:32, 13:17] = 20
    return tf.io.encode_png(page).numpy()


def _warm_up(signature: Signature) -> None:
    """Run `signature` once on a small input, so that the first request does not pay for
    the function's first call (its graph optimised, its kernels made)."""
    spec = signature.spec
    if spec is None or spec.shape is None or not spec.shape:
        return
    if spec.dtype is None:  # encoded images
        signature.run([[warm_up_image()]])
    else:
        signature.run([np.zeros([1 if n is None else n for n in spec.shape], spec.dtype)])


def _reason(error: Exception) -> str:
    """What an op's error says, without TensorFlow's frame of it (where in the graph)."""
    text = getattr(error, "message", None) or str(error)
    kept = [
        line.strip()
        for line in text.splitlines()
        if line.strip()
        and not line.strip().startswith(("Graph execution error", "Detected at node", "[[", "<"))
    ]
    return " ".join(" ".join(kept).split())[:300] or type(error).__name__


def _files(path: Path) -> tuple:
    """Every file of a version folder with its size and modification time: a copy still
    under way changes them."""
    found = []
    for root, _, names in os.walk(path):
        for name in names:
            try:
                stat = os.stat(os.path.join(root, name))
            except OSError:
                continue
            found.append((os.path.join(root, name), stat.st_size, stat.st_mtime_ns))
    return tuple(sorted(found))


def _input_spec(function: Any) -> InputSpec | None:
    inputs = function.structured_input_signature[1]
    if len(inputs) != 1:
        return None
    ((name, spec),) = inputs.items()
    dtype = None if spec.dtype == tf.string else np.dtype(spec.dtype.as_numpy_dtype)
    shape = None if spec.shape.rank is None else tuple(spec.shape.as_list())
    return InputSpec(name, dtype, shape)


def metadata(path: Path, number: int, name: str) -> dict[str, Any]:
    """TF Serving's metadata answer: the model spec and its signature defs, as JSON."""
    from google.protobuf import json_format
    from tensorflow.core.protobuf import saved_model_pb2

    proto = saved_model_pb2.SavedModel()
    proto.ParseFromString((path / "saved_model.pb").read_bytes())
    graph = next(g for g in proto.meta_graphs if "serve" in g.meta_info_def.tags)
    signatures = {
        key: json_format.MessageToDict(
            value, preserving_proto_field_name=True, always_print_fields_with_no_presence=True
        )
        for key, value in graph.signature_def.items()
        if not key.startswith("__")
    }
    return {
        "model_spec": {"name": name, "signature_name": "", "version": str(number)},
        "metadata": {"signature_def": {"signature_def": signatures}},
    }
