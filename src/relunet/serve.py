"""`relunet serve`: TensorFlow Serving's REST API for relunet's SavedModels, and a page to draw on.

    GET  /v1/models/<name>[/versions/<v>]             version status
    GET  /v1/models/<name>[/versions/<v>]/metadata    the signatures
    POST /v1/models/<name>[/versions/<v>]:predict     {"instances": ...} or {"inputs": ...}
    GET  /                                            the drawing page

The request and response bodies are TF Serving's (its REST API guide), so a client
written for TensorFlow Serving works against this server and the other way round: the
row format (`instances`, `predictions`) and the columnar one (`inputs`, `outputs`),
`signature_name` to pick a signature, `{"b64": ...}` for the bytes of encoded images
(the `serving_bytes` signature). The model folder holds numbered versions, as
`relunet export` writes them; the newest serves by default, every version serves by
number, and a new version is picked up at the next request without a restart.
Bad requests get a 400 with a JSON `error`, as TF Serving answers them.
"""

from __future__ import annotations

import base64
import json
import threading
from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from typing import Any

import numpy as np
import tensorflow as tf
from starlette.applications import Starlette
from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import HTMLResponse, JSONResponse
from starlette.routing import Route

from relunet import preflight
from relunet.config import ServeConfig
from relunet.errors import RelunetError
from relunet.export import SIGNATURE
from relunet.inference import load_classifier
from relunet.paths import no_versions, saved_model_versions

MAX_BODY_BYTES = ServeConfig.max_body_bytes  # over this a request is refused (413)


class BadRequest(Exception):
    """A request the server cannot answer; the message goes back as its `error`."""

    def __init__(self, message: str, status: int = 400):
        super().__init__(message)
        self.status = status


@dataclass
class Version:
    number: int
    path: Path
    loaded: Any  # the tf.saved_model.load result, kept alive with its variables
    metadata: dict[str, Any]


class ModelFolder:
    """The numbered SavedModel versions in one folder, loaded as they appear."""

    def __init__(self, folder: str | Path, name: str, trust_model: bool = False):
        self.folder, self.name, self.trust_model = Path(folder), name, trust_model
        self._versions: dict[int, Version] = {}
        self._lock = threading.Lock()
        if not self.refresh():
            raise no_versions(self.folder)

    def refresh(self) -> dict[int, Version]:
        """Load any version that appeared since the last look; return all of them."""
        on_disk = saved_model_versions(self.folder)
        with self._lock:
            for number in on_disk:
                if number not in self._versions:
                    self._versions[number] = self._load(number)
            return dict(self._versions)

    def version(self, number: int | None) -> Version:
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
        classifier = load_classifier(path, trust_model=self.trust_model)  # checks and trust
        loaded = classifier.saved_model
        return Version(number, path, loaded, _metadata(path, number, self.name))


def create_app(models: ModelFolder, max_body_bytes: int = MAX_BODY_BYTES) -> Starlette:
    """The Starlette application serving `models`."""

    async def api(request: Request):
        try:
            name, version, verb = _parse_path(request.path_params["rest"])
            if name != models.name:
                raise BadRequest(f"Servable not found for request: Latest({name})", 404)
            if request.method == "POST":
                if verb != "predict":
                    raise BadRequest(f"The verb {verb!r} is not supported; use :predict.", 404)
                body = await _read_body(request, max_body_bytes)
                served = models.version(version)
                return JSONResponse(await run_in_threadpool(predict, served, body))
            served = models.version(version) if version is not None else None
            if verb == "metadata":
                return JSONResponse((served or models.version(None)).metadata)
            if verb:
                raise BadRequest(f"Unknown path {request.url.path}.", 404)
            return JSONResponse(_status(models, served))
        except BadRequest as error:
            return JSONResponse({"error": str(error)}, status_code=error.status)
        except RelunetError as error:  # a version that appeared but cannot be served
            return JSONResponse({"error": " ".join(str(error).split())}, status_code=503)
        except Exception as error:  # never a bare 500 page: the client gets the reason
            return JSONResponse({"error": f"{type(error).__name__}: {error}"}, status_code=500)

    async def page(request: Request):
        html = resources.files("relunet").joinpath("static/draw.html").read_text()
        return HTMLResponse(html.replace("{{MODEL}}", models.name))

    return Starlette(
        routes=[
            Route("/", page),
            Route("/v1/models/{rest:path}", api, methods=["GET", "POST"]),
        ]
    )


def predict(version: Version, body: bytes) -> dict[str, Any]:
    """Answer one :predict body, in the format it came in (row or columnar)."""
    try:
        request = json.loads(body)
    except (ValueError, UnicodeDecodeError) as error:
        raise BadRequest(f"The body is not JSON: {error}.") from None
    if not isinstance(request, dict) or ("instances" in request) == ("inputs" in request):
        raise BadRequest(
            'The body must be a JSON object with "instances" (row format) or '
            '"inputs" (columnar format), not both.'
        )
    signature_name = request.get("signature_name") or SIGNATURE
    signatures = version.loaded.signatures
    if signature_name not in signatures:
        raise BadRequest(
            f'Serving signature name: "{signature_name}" not found in signature '
            f"def; this model has {', '.join(sorted(signatures))}."
        )
    signature = signatures[signature_name]
    ((input_name, spec),) = signature.structured_input_signature[1].items()
    rows = "instances" in request
    values = request["instances"] if rows else request["inputs"]
    if not rows and _named(values):  # {"inputs": {"images": [...]}}
        values = _input(values, input_name)
    if rows and isinstance(values, list):  # [{"images": ...}, ...] or [value, ...]
        values = [_input(v, input_name) if _named(v) else v for v in values]
    tensor = _to_tensor(values, spec, input_name)
    try:
        outputs = signature(**{input_name: tensor})
    except (tf.errors.InvalidArgumentError, ValueError) as error:
        message = " ".join(str(error).split())[:300]
        raise BadRequest(f"The model could not run on this input: {message}") from None
    outputs = {k: v.numpy().tolist() for k, v in outputs.items()}
    if not rows:
        return {"outputs": outputs}
    count = len(next(iter(outputs.values())))
    return {"predictions": [{k: v[i] for k, v in outputs.items()} for i in range(count)]}


def _to_tensor(values: Any, spec: tf.TensorSpec, name: str) -> tf.Tensor:
    """The JSON values as a tensor of the signature's input type and shape."""
    if not isinstance(values, list) or not values:
        raise BadRequest(f"'{name}' must be a non-empty list, one entry per image.")
    if spec.dtype == tf.string:
        return tf.constant([_b64(v, name) for v in values], tf.string)
    try:
        array = np.asarray(values)
    except ValueError as error:
        raise BadRequest(f"'{name}' is not a regular array: {error}.") from None
    if array.dtype.kind not in "iuf":
        what = {"U": "strings", "b": "true/false values"}.get(array.dtype.kind, "mixed values")
        raise BadRequest(f"'{name}' must hold numbers; received {what}.")
    if not spec.is_compatible_with(tf.TensorSpec(array.shape, spec.dtype)):
        raise BadRequest(
            f"'{name}' must have shape {list(spec.shape)} (None: any number of images); "
            f"received shape {list(array.shape)}."
        )
    if spec.dtype == tf.uint8 and (array.min() < 0 or array.max() > 255 or np.any(array % 1)):
        raise BadRequest(f"'{name}' holds values outside the whole numbers 0..255.")
    return tf.constant(array.astype(spec.dtype.as_numpy_dtype))


def _b64(value: Any, name: str) -> bytes:
    if not isinstance(value, dict) or set(value) != {"b64"} or not isinstance(value["b64"], str):
        raise BadRequest(f'\'{name}\' takes encoded images as {{"b64": "..."}} objects.')
    try:
        return base64.b64decode(value["b64"], validate=True)
    except ValueError:
        raise BadRequest(f"A b64 value of '{name}' is not valid base64.") from None


def _named(value: Any) -> bool:
    """Whether a value names its input ({"images": ...}), unlike a bare {"b64": ...}."""
    return isinstance(value, dict) and "b64" not in value


def _input(named: dict, name: str) -> Any:
    if set(named) != {name}:
        raise BadRequest(
            f"The signature's input is '{name}'; the request named "
            f"{', '.join(map(repr, named)) or 'none'}."
        )
    return named[name]


def _parse_path(rest: str) -> tuple[str, int | None, str]:
    """'relunet', 'relunet/versions/2:predict', 'relunet/metadata' -> name, version, verb."""
    path, _, verb = rest.partition(":")
    parts = path.strip("/").split("/")
    if parts[-1] == "metadata" and not verb:
        parts, verb = parts[:-1], "metadata"
    if len(parts) == 3 and parts[1] == "versions":
        if not parts[2].isdigit():
            raise BadRequest(f"The version {parts[2]!r} is not a number.")
        return parts[0], int(parts[2]), verb
    if len(parts) != 1 or not parts[0]:
        raise BadRequest(f"Unknown path /v1/models/{rest}.", 404)
    return parts[0], None, verb


async def _read_body(request: Request, limit: int) -> bytes:
    declared = request.headers.get("content-length")
    if declared and declared.isdigit() and int(declared) > limit:
        raise BadRequest(f"The request is {int(declared):,} bytes; the limit is {limit:,}.", 413)
    body = b""
    async for chunk in request.stream():
        body += chunk
        if len(body) > limit:
            raise BadRequest(f"The request is over the limit of {limit:,} bytes.", 413)
    return body


def _status(models: ModelFolder, only: Version | None) -> dict[str, Any]:
    versions = [only] if only else sorted(models.refresh().values(), key=lambda v: -v.number)
    return {
        "model_version_status": [
            {
                "version": str(v.number),
                "state": "AVAILABLE",
                "status": {"error_code": "OK", "error_message": ""},
            }
            for v in versions
        ]
    }


def _metadata(path: Path, number: int, name: str) -> dict[str, Any]:
    """TF Serving's metadata answer: the model spec and its signature defs, as JSON."""
    from google.protobuf import json_format
    from tensorflow.core.protobuf import saved_model_pb2

    proto = saved_model_pb2.SavedModel()
    proto.ParseFromString((path / "saved_model.pb").read_bytes())
    graph = next(g for g in proto.meta_graphs if "serve" in g.meta_info_def.tags)
    signatures = {
        key: json_format.MessageToDict(value)
        for key, value in graph.signature_def.items()
        if not key.startswith("__")
    }
    return {
        "model_spec": {"name": name, "signature_name": "", "version": str(number)},
        "metadata": {"signature_def": {"signature_def": signatures}},
    }


def serve(config: ServeConfig) -> None:
    """Load the folder's versions and serve them until interrupted. RelunetError for bad
    input (relunet.preflight.serve's checks)."""
    run(preflight.serve(config))


def run(config: ServeConfig) -> None:
    """`serve` for a config that has passed `relunet.preflight.serve`."""
    import uvicorn

    models = ModelFolder(config.model_dir, config.name, config.trust_model)
    newest = max(models.refresh())
    print(
        f"serve: {config.name} version {newest} from {config.model_dir} at "
        f"http://{config.host}:{config.port}/ (REST: /v1/models/{config.name}:predict)",
        flush=True,
    )
    app = create_app(models, config.max_body_bytes)
    uvicorn.run(app, host=config.host, port=config.port, log_level="warning")
