"""TF Serving's REST API on Starlette: the paths, the status, the metadata, :predict.

    GET  /v1/models/<name>[/versions/<v> | /labels/<l>]             version status
    GET  /v1/models/<name>[/versions/<v> | /labels/<l>]/metadata    the signatures
    POST /v1/models/<name>[/versions/<v> | /labels/<l>]:predict     instances or inputs
    GET  /                                                          the drawing page
    GET  /healthz, /readyz                                          alive; ready (lifecycle)
    GET  /monitoring/prometheus/metrics                             Prometheus (watch)

As in TF Serving, the path's words match in any case (`/V1/MODELS/relunet`), the model
name and label exactly; an unknown label is a 400, an unknown model or version a 404,
another method than the path's a 405 with `Allow`.
A :predict body is read on the event loop, decoded in a worker thread, run by the
batcher (or in a worker thread, one call per request, without batching), and its
answer written in a worker thread if it is large: the event loop moves bytes. A body
over the limit is read to its end, unkept, so that any client reads the 413 after it.
"""

from __future__ import annotations

import asyncio
import functools
import re
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from importlib import resources
from typing import Any

import tensorflow as tf
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import HTMLResponse, JSONResponse, Response
from starlette.routing import Route

from relunet.base.errors import RelunetError
from relunet.reading.image_headers import refusal
from relunet.serve.batching import Batcher
from relunet.serve.decode import BadRequest, json_reply, read_request, to_input
from relunet.serve.lifecycle import Life
from relunet.serve.models import ModelFolder, Signature, Version, warm_up_image
from relunet.serve.watch import PATH as METRICS_PATH
from relunet.serve.watch import Metrics

DRAIN_BYTES = 64 << 20  # past the limit, read this much more before giving up on a body
# Threads that decode bodies and write answers. They hold the GIL as they work, so more
# would only take turns; more than one, so that a large body does not hold up small
# ones. A plain executor: a hop to anyio's worker threads (Starlette's
# run_in_threadpool) costs more than a small request's decoding (a trivial endpoint
# with three hops a request answered 1.6 times as many requests on this executor).
WORKERS = ThreadPoolExecutor(4, thread_name_prefix="relunet-decode")
ANSWER_ON_THE_LOOP = 16  # images: a smaller answer costs less to write than to hand over
_PATH = re.compile(
    r"/v1/models/(?P<name>[^/:]+)"
    r"(?:/versions/(?P<version>[^/:]+)|/labels/(?P<label>[^/:]+))?"
    r"(?P<metadata>/metadata)?(?::(?P<verb>[^/:]*))?/?",
    re.IGNORECASE,
)


def create_app(
    life: Life, name: str, batcher: Batcher | None, max_body_bytes: int, metrics: Metrics
) -> Starlette:
    """The Starlette application serving `life.models` (the model `name`) once they are
    loaded, batching with `batcher` if given, counting in `metrics`."""
    handlers = _Handlers(life, name, batcher, max_body_bytes, metrics)
    every = ["GET", "HEAD", "POST", "PUT", "DELETE", "PATCH", "OPTIONS", "TRACE", "CONNECT"]
    return Starlette(
        routes=[
            Route("/", handlers.drawing_page),
            Route("/healthz", handlers.healthz),
            Route("/readyz", handlers.readyz),
            Route(METRICS_PATH, handlers.prometheus),
            Route("/{path:path}", handlers.api, methods=every),  # all answered in JSON
        ]
    )


@dataclass
class _Handlers:
    """What each path answers, over the server's life, batcher and metrics."""

    life: Life
    name: str
    batcher: Batcher | None
    max_body_bytes: int
    metrics: Metrics

    async def api(self, request: Request) -> Response:
        """TF Serving's paths; every error a JSON `error` with its status."""
        try:
            return await self._api(request)
        except BadRequest as error:
            if error.reason:  # counted and logged by relunet.serve.watch
                request.scope.setdefault("relunet", {})["refused"] = error.reason
            headers = {"Allow": error.allow} if error.allow else None
            return JSONResponse({"error": str(error)}, status_code=error.status, headers=headers)
        except RelunetError as error:  # a version that appeared but cannot be served
            return JSONResponse({"error": " ".join(str(error).split())}, status_code=503)
        except Exception as error:  # never a bare 500 page: the client gets the reason
            return JSONResponse({"error": f"{type(error).__name__}: {error}"}, status_code=500)

    async def _api(self, request: Request) -> Response:
        pages = request.app.routes[:-1]  # the server's own, before this catch-all route
        if any(page.path == request.url.path for page in pages):  # GET and HEAD only
            raise BadRequest(
                f"The method {request.method} is not allowed on {request.url.path}; GET it.",
                405,
                allow="GET, HEAD",
            )
        path = _PATH.fullmatch(request.url.path)
        if not path:
            raise BadRequest(f"Unknown path {request.url.path}.", 404)
        models = self.life.models
        if models is None:
            raise BadRequest(f"The model is not ready: {self.life.not_ready()}.", 503)
        if path["name"] != models.name:
            raise BadRequest(f"Servable not found for request: Latest({path['name']})", 404)
        number = _version_number(path["version"])
        verb = path["verb"]  # None without a colon; "" after one
        if verb is not None and verb.lower() != "predict":
            raise BadRequest(f"The verb {verb!r} is not supported; use :predict.", 404)
        if verb is not None and path["metadata"]:
            raise BadRequest(f"Unknown path {request.url.path}: :predict ends a model's path.", 404)
        allowed = "POST" if verb else "GET, HEAD"  # :predict takes a body; the rest are read
        if request.method not in allowed.split(", "):
            raise BadRequest(
                f"The method {request.method} is not allowed here; GET the status or "
                "metadata, POST :predict.",
                405,
                allow=allowed,
            )
        if verb:
            about = request.scope.setdefault("relunet", {})  # see relunet.serve.watch
            about["model"] = models.name
            body = await _read_body(request, self.max_body_bytes)
            return await _predict(
                models, self.batcher, self.metrics, about, number, path["label"], body
            )
        served = await _in_worker(_served, models, number, path["label"])
        if path["metadata"]:
            return JSONResponse((served or models.version()).metadata)
        if self.life.draining:
            raise BadRequest(f"The model is not ready: {self.life.not_ready()}.", 503)
        return JSONResponse(_status(models, served))

    async def drawing_page(self, request: Request) -> Response:
        html = resources.files("relunet.serve").joinpath("static/draw.html").read_text()
        return HTMLResponse(html.replace("{{MODEL}}", self.name))

    async def healthz(self, request: Request) -> Response:
        return JSONResponse({"status": "serving"})

    async def readyz(self, request: Request) -> Response:
        why = self.life.not_ready()
        if why is not None:
            return JSONResponse({"status": why.split(":")[0], "error": why}, status_code=503)
        versions = sorted(self.life.models.refresh(), reverse=True)
        if not versions:  # every version folder removed since it loaded: predict is 503
            why = f"no version of {self.name} is loaded now"
            return JSONResponse({"status": "empty", "error": why}, status_code=503)
        return JSONResponse({"status": "ready", "versions": [str(v) for v in versions]})

    async def prometheus(self, request: Request) -> Response:
        models = self.life.models
        if models is not None:
            self.metrics.versions(models.name, models.refresh())
        return Response(generate_latest(self.metrics.registry), media_type=CONTENT_TYPE_LATEST)


async def _predict(
    models: ModelFolder,
    batcher: Batcher | None,
    metrics: Metrics,
    about: dict,
    number: int | None,
    label: str | None,
    body: bytes,
) -> Response:
    version, signature, inputs, rows = await _in_worker(_decode, models, number, label, body)
    labels = (models.name, str(version.number), signature.name)
    about.update(version=labels[1], signature=labels[2], images=len(inputs))
    run = metrics.timed(signature.run, labels)
    headers = {}
    if batcher is not None and signature.batchable:
        key = (version.number, signature.name)
        future = batcher.submit(key, run, inputs, len(inputs))
        outputs, batch = await asyncio.wrap_future(future)
        headers["X-Relunet-Batch"] = str(batch)
    else:
        (outputs,) = await _in_worker(run, [inputs])
    metrics.answered(outputs, *labels[:2])
    if len(inputs) > ANSWER_ON_THE_LOOP:
        content = await _in_worker(json_reply, outputs, rows)
    else:
        content = json_reply(outputs, rows)
    return Response(content, media_type="application/json", headers=headers)


async def _in_worker(function: Callable, *args: Any) -> Any:
    return await asyncio.get_running_loop().run_in_executor(
        WORKERS, functools.partial(function, *args)
    )


def _decode(
    models: ModelFolder, number: int | None, label: str | None, body: bytes
) -> tuple[Version, Signature, Any, bool]:
    """The version and signature a request names, and its input, checked."""
    version = models.version(number, label)  # an unknown version first, as TF Serving
    signature_name, rows, values = read_request(body)
    signature = version.signature(signature_name)
    if signature.spec is None:
        raise BadRequest(
            f'The signature "{signature.name}" does not take exactly one input; '
            "relunet serve runs those that do."
        )
    inputs = to_input(values, signature.spec, rows)
    if signature.spec.dtype is None:  # encoded images: none may be a bomb (before batching)
        for index, encoded in enumerate(inputs):
            _check_pixels(encoded, index)
    return version, signature, inputs, rows


def warm_up() -> None:
    """Run the request path's own TensorFlow function (the header check) once, so that
    the first request does not pay for tracing it."""
    _check_pixels(warm_up_image(), 0)


def _check_pixels(encoded: bytes, index: int) -> None:
    """Refuse, before it is batched with others, an image whose header declares more than
    relunet reads, an animated WebP, or a JPEG whose header cannot be read."""
    try:
        refused = refusal(tf.constant(encoded))
    except tf.errors.InvalidArgumentError:
        raise BadRequest(f"Image {index} cannot be decoded as an image.") from None
    if refused:
        raise BadRequest(f"Image {index} {refused.text}.", reason=refused.reason)


def _served(models: ModelFolder, number: int | None, label: str | None) -> Version | None:
    """The version a GET names, or None for all of them (after a look at the folder)."""
    if number is None and label is None:
        models.refresh()
        return None
    return models.version(number, label)


def _version_number(text: str | None) -> int | None:
    if text is None:
        return None
    if not (text.isascii() and text.isdigit()):
        raise BadRequest(f"The version {text!r} is not a number.")
    return int(text)


async def _read_body(request: Request, limit: int) -> bytes:
    """The body, or a 413 once all of it (up to DRAIN_BYTES past the limit) is read."""
    declared = request.headers.get("content-length", "")
    declared_size = int(declared) if declared.isdigit() else None

    def too_large() -> BadRequest:
        size = f"{declared_size:,} bytes" if declared_size is not None else "over the limit"
        return BadRequest(
            f"The request is {size}; the limit is {limit:,} bytes.", 413, "body_too_large"
        )

    waits = "100-continue" in request.headers.get("expect", "").lower()
    # A client that waits for "100 Continue" before sending its body gets the 413 at
    # once (the server sends 100 only when the body is first read).
    if declared_size is not None and declared_size > (limit if waits else limit + DRAIN_BYTES):
        raise too_large()
    chunks, received = [], 0
    async for chunk in request.stream():
        received += len(chunk)
        if received <= limit:
            chunks.append(chunk)
        elif received > limit + DRAIN_BYTES:
            break
    if received > limit:
        raise too_large()
    return b"".join(chunks)


def _status(models: ModelFolder, only: Version | None) -> dict[str, Any]:
    """TF Serving's version status: AVAILABLE with OK, or (for a version folder that did
    not load) END with the error, as TF Serving reports a servable that failed."""
    loaded = [only] if only else list(models.refresh().values())
    found = {v.number: ("AVAILABLE", "OK", "") for v in loaded}
    if only is None:
        for number, failed in models.unloadable.items():
            found[number] = ("END", "UNKNOWN", failed.error)
    return {
        "model_version_status": [
            {
                "version": str(number),
                "state": state,
                "status": {"error_code": code, "error_message": message},
            }
            for number, (state, code, message) in sorted(found.items(), reverse=True)
        ]
    }
