"""`relunet serve`: TensorFlow Serving's REST API for relunet's SavedModels, and a page to
draw on.

The request and response bodies are TF Serving's (its REST API guide), so a client
written for TensorFlow Serving works against this server and the other way round: the
row format (`instances`, `predictions`) and the columnar one (`inputs`, `outputs`),
`signature_name` to pick a signature, `{"b64": ...}` for the bytes of encoded images
(the `serving_bytes` signature), version labels, the metadata in TF Serving's field
names, and request batching with TF Serving's flags. The model folder holds numbered
versions, as `relunet export` writes them; the newest serves by default, every version
by number or label, and a new version is picked up at the next request without a
restart. Bad requests get a 400 with a JSON `error`, as TF Serving answers them.

    server.py    this: the socket bound at once, the versions loaded in the background
    rest.py      the paths and answers, on Starlette
    heads.py     request heads bounded, under httptools or h11
    decode.py    the JSON bodies, read into NumPy (no TensorFlow)
    batching.py  concurrent requests as one model call
    models.py    the folder of versions, their labels, signatures and metadata
    lifecycle.py loading, ready, draining: /healthz, /readyz, SIGTERM
    watch.py     Prometheus metrics and the access log
    listen.py    the listening socket (no TensorFlow: preflight binds it once to check)

Importing this module imports neither TensorFlow nor Starlette; `run` does.
"""

from __future__ import annotations

import sys

from relunet import preflight
from relunet.config import ServeConfig
from relunet.serve.listen import listening_socket

__all__ = ["run", "serve"]


def serve(config: ServeConfig) -> None:
    """Load the folder's versions and serve them until interrupted. RelunetError for bad
    input (relunet.preflight.serve's checks)."""
    run(preflight.serve(config))


def run(config: ServeConfig) -> None:
    """`serve` for a config that has passed `relunet.preflight.serve`: listen at once,
    load and warm up the versions in the background (relunet.serve.lifecycle), serve
    until a signal, drain, exit."""
    import tensorflow as tf
    import uvicorn

    from relunet.serve.batching import Batcher
    from relunet.serve.heads import bounded_protocol, h11_event_limit
    from relunet.serve.lifecycle import DrainingServer, Life, load_in_background
    from relunet.serve.rest import create_app
    from relunet.serve.watch import Metrics, Watched

    listener = listening_socket(config.host, config.port)  # before the seconds of loading
    tf.config.threading.set_intra_op_parallelism_threads(config.tensorflow_intra_op_parallelism)
    batcher = None
    if config.enable_batching == "true":
        batcher = Batcher(
            config.max_batch_size, config.batch_timeout_micros / 1e6, config.num_batch_threads
        )
    metrics = Metrics(queued=batcher.waiting if batcher else lambda: 0)
    life = Life()
    app = create_app(life, config.name, batcher, config.max_body_bytes, metrics)
    log = sys.stdout if config.access_log else None
    watched = Watched(app, metrics, log)
    limit = config.max_request_head_bytes
    server = DrainingServer(
        uvicorn.Config(
            watched,
            http=bounded_protocol(limit, watched.head_refused),
            h11_max_incomplete_event_size=h11_event_limit(limit),
            log_level="warning",
            access_log=False,
            timeout_graceful_shutdown=config.drain_seconds,
        ),
        life,
    )
    load_in_background(life, lambda: _load_versions(config), server)
    try:
        server.run(sockets=[listener])
    finally:
        listener.close()
        if batcher is not None:
            batcher.close(wait=not server.force_exit)
    if life.failed is not None:
        raise life.failed


def _load_versions(config: ServeConfig):
    """The folder's versions, loaded and warmed up, with the lines that say so."""
    from relunet.serve.models import ModelFolder
    from relunet.serve.rest import warm_up

    labels = config.version_labels()
    models = ModelFolder(config.model_dir, config.name, config.trust_model, labels)
    warm_up()
    print(
        f"serve: {config.name} version {max(models.refresh())} from {config.model_dir} at "
        f"http://{config.host}:{config.port}/ (REST: /v1/models/{config.name}:predict)",
        flush=True,
    )
    for number, failed in sorted(models.unloadable.items()):
        print(f"serve: version {number} is not served: {failed.error}", flush=True)
    if labels:
        named = ", ".join(f"{label}={number}" for label, number in labels.items())
        print(f"serve: labels {named} (/v1/models/{config.name}/labels/LABEL)", flush=True)
    if config.enable_batching == "true":
        micros = config.batch_timeout_micros
        print(
            f"serve: batching up to {config.max_batch_size} images a call, "
            + (f"waiting up to {micros} us for more, " if micros else "")
            + f"{config.num_batch_threads} batch threads",
            flush=True,
        )
    return models
