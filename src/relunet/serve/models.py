"""The served model: a folder of numbered SavedModel versions, their labels, and each
version's signatures as functions of NumPy batches.

A version that appears in the folder is loaded at the next request (the folder is
looked at again when its modification time changes, and at least once a second, as TF
Serving polls its file system). Labels (`--label stable=1`) name versions, as TF
Serving's `version_labels`. The metadata answer is TF Serving's: the SignatureDefs of
`saved_model.pb` in protobuf's JSON with the proto field names (`tensor_shape`,
`method_name`) and every field written, defaults too (`"name": ""` in each `dim`,
`"unknown_rank": false`, `"defaults": {}`), as its model servers print them.
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

from relunet.classifier import load_classifier
from relunet.paths import no_versions, saved_model_versions
from relunet.serve.decode import BadRequest, InputSpec
from relunet.signatures import SIGNATURE

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
            message = " ".join(str(error).split())[:300]
            raise BadRequest(f"The model could not run on this input: {message}") from None
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

    def signature(self, name: str | None) -> Signature:
        name = name or SIGNATURE
        if name not in self.signatures:
            raise BadRequest(
                f'Serving signature name: "{name}" not found in signature def; this '
                f"model has {', '.join(sorted(self.signatures))}."
            )
        return self.signatures[name]


class ModelFolder:
    """The numbered SavedModel versions in one folder, loaded as they appear."""

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
        self._lock = threading.Lock()
        self._seen: tuple[int, float] | None = None  # (folder mtime, when) of the last scan
        if not self.refresh():
            raise no_versions(self.folder)

    def refresh(self) -> dict[int, Version]:
        """Load any version that appeared since the last look; return all of them."""
        with self._lock:
            mtime, now = os.stat(self.folder).st_mtime_ns, time.monotonic()
            if self._seen is None or self._seen[0] != mtime or now - self._seen[1] > RESCAN_SECONDS:
                for number in saved_model_versions(self.folder):
                    if number not in self._versions:
                        self._versions[number] = self._load(number)
                self._seen = (mtime, now)
            return dict(self._versions)

    def version(self, number: int | None = None, label: str | None = None) -> Version:
        """The version a request names by number or label (the newest if neither)."""
        if label is not None:
            if label not in self.labels:
                raise BadRequest(f"Unrecognized servable version label: {label}")
            number = self.labels[label]
        versions = self.refresh()
        if number is None:
            return versions[max(versions)]
        if number not in versions:
            raise BadRequest(
                f"Servable not found for request: Specific({self.name}, {number})", 404
            )
        return versions[number]

    def _load(self, number: int) -> Version:
        path = self.folder / str(number)
        loaded = load_classifier(path, trust_model=self.trust_model).saved_model  # and checks
        signatures = {
            name: Signature(name, function, _input_spec(function))
            for name, function in loaded.signatures.items()
        }
        return Version(number, path, loaded, signatures, metadata(path, number, self.name))


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
