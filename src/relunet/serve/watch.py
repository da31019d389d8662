"""What an operator watches: Prometheus metrics at TF Serving's path, and an access log.

Every request passes through `Watched`, an ASGI wrapper around the application: it
counts the request by model, version, signature and status code, times it from its
arrival to its answer's last byte, keeps the number in flight, and (with
`--access-log`) prints one line for it. The handlers say what a request was about in
`scope["relunet"]` (the version and signature it ran, its images, and why it was
refused where a limit refused it: an image over the pixel budget, a body over
--max-body-bytes). A request head over --max-request-head-bytes never reaches the
application: relunet.serve.heads refuses it and calls `Watched.head_refused`.
Refusals are counted by status code and reason in relunet_refused_total, and the
access log's line ends with the reason. Model calls, batch
sizes and the images in which no digit was found are counted where they happen
(`Metrics.timed`, `Metrics.answered`). The metrics live in a registry of their own,
written by prometheus_client in its text format.
"""

from __future__ import annotations

import datetime
import time
from collections.abc import Callable
from typing import Any, TextIO

import numpy as np
from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

from relunet.base.signatures import DIGIT_FOUND, NOT_A_DIGIT

PATH = "/monitoring/prometheus/metrics"  # TF Serving's --monitoring_config_file path
SECONDS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)
IMAGES = (1, 2, 4, 8, 16, 32, 64, 128, 256, 512)
BY_CALL = ("model", "version", "signature")
REFUSED = (
    "Requests refused by a limit, by HTTP status code and reason (request_line_too_long, "
    "request_head_too_large, body_too_large, image_over_pixel_budget, animated_webp)."
)


class Metrics:
    """relunet serve's metrics (prefix relunet_), in their own registry."""

    def __init__(self, queued: Callable[[], int] = lambda: 0):
        self.registry = r = CollectorRegistry()
        self.requests = Counter(
            "relunet_requests",
            "Requests answered, by model, version, signature and HTTP status code.",
            [*BY_CALL, "code"],
            registry=r,
        )
        self.latency = Histogram(
            "relunet_request_latency_seconds",
            "Time from a request's arrival to the last byte of its answer.",
            BY_CALL,
            buckets=SECONDS,
            registry=r,
        )
        self.model_latency = Histogram(
            "relunet_model_call_latency_seconds",
            "Time of one call of a signature on a batch of images.",
            BY_CALL,
            buckets=SECONDS,
            registry=r,
        )
        self.batch_size = Histogram(
            "relunet_batch_size", "Images in one model call.", BY_CALL, buckets=IMAGES, registry=r
        )
        self.in_flight = Gauge(
            "relunet_requests_in_flight", "Requests received and not yet answered.", registry=r
        )
        self.queued = Gauge(
            "relunet_requests_queued", "Requests waiting for a batch thread.", registry=r
        )
        self.queued.set_function(queued)
        self.no_digit = Counter(
            "relunet_images_no_digit_found",
            "Images posted to serving_bytes in which no digit was found.",
            ["model", "version"],
            registry=r,
        )
        self.load = Gauge(
            "relunet_model_load_seconds",
            "Seconds a version took to load: its SavedModel read and restored.",
            ["model", "version"],
            registry=r,
        )
        self.warm_up = Gauge(
            "relunet_model_warm_up_seconds",
            "Seconds a version's warm-up took once loaded: each signature run once.",
            ["model", "version"],
            registry=r,
        )
        self.not_a_digit = Counter(
            "relunet_images_not_a_digit",
            'Images posted to serving_bytes answered "not a digit".',
            ["model", "version"],
            registry=r,
        )
        self.refused = Counter("relunet_refused", REFUSED, ["code", "reason"], registry=r)

    def versions(self, model: str, loaded: dict[int, Any]) -> None:
        """The load and warm-up times of the versions now loaded (relunet.serve.models'
        Version), as TF Serving reports load_latency and model_warmup_latency."""
        self.load.clear()
        self.warm_up.clear()
        for number, version in loaded.items():
            self.load.labels(model, str(number)).set(version.load_seconds)
            self.warm_up.labels(model, str(number)).set(version.warm_up_seconds)

    def timed(self, run: Callable, labels: tuple[str, str, str]) -> Callable:
        """`run` (a signature's call on a list of requests' inputs), counted: its time
        and its images."""
        latency, sizes = self.model_latency.labels(*labels), self.batch_size.labels(*labels)

        def call(inputs: list) -> Any:
            start = time.perf_counter()
            try:
                return run(inputs)
            finally:
                latency.observe(time.perf_counter() - start)
                sizes.observe(sum(len(x) for x in inputs))

        return call

    def answered(self, outputs: dict[str, np.ndarray], model: str, version: str) -> None:
        """Count the images of one answer in which no digit was found, or not a digit."""
        if DIGIT_FOUND in outputs:
            self.no_digit.labels(model, version).inc(int((~outputs[DIGIT_FOUND]).sum()))
        if NOT_A_DIGIT in outputs:
            self.not_a_digit.labels(model, version).inc(int(outputs[NOT_A_DIGIT].sum()))


class Watched:
    """The ASGI application `app`, each HTTP request counted and timed in `metrics`, and
    logged to `log` (one line) if given."""

    def __init__(self, app: Any, metrics: Metrics, log: TextIO | None = None):
        self.app, self.metrics, self.log = app, metrics, log

    async def __call__(self, scope: dict, receive: Callable, send: Callable) -> None:
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        start, status = time.perf_counter(), 500
        about = scope["relunet"] = {
            "model": "",
            "version": "",
            "signature": "",
            "images": 0,
            "refused": "",
        }

        async def sending(message: dict) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
            await send(message)

        self.metrics.in_flight.inc()
        try:
            await self.app(scope, receive, sending)
        finally:
            self.metrics.in_flight.dec()
            seconds = time.perf_counter() - start
            labels = (about["model"], about["version"], about["signature"])
            self.metrics.requests.labels(*labels, str(status)).inc()
            self.metrics.latency.labels(*labels).observe(seconds)
            if about["refused"]:
                self.metrics.refused.labels(str(status), about["refused"]).inc()
            if self.log is not None:
                path = scope["path"] + (
                    f"?{scope['query_string'].decode()}" if scope["query_string"] else ""
                )
                what = (scope["method"], path, status, seconds, about["images"], about["refused"])
                self._write(*what)

    def head_refused(self, status: int, reason: str, method: str, seconds: float) -> None:
        """A request whose head relunet.serve.heads refused (its path unread: "-")."""
        self.metrics.requests.labels("", "", "", str(status)).inc()
        self.metrics.refused.labels(str(status), reason).inc()
        if self.log is not None:
            self._write(method or "-", "-", status, seconds, 0, reason)

    def _write(
        self, method: str, path: str, status: int, seconds: float, images: int, refused: str
    ) -> None:
        now = datetime.datetime.now(datetime.UTC).isoformat(timespec="milliseconds")
        line = f"{now[:-6]}Z {method} {path} {status} {1000 * seconds:.1f} ms {images} images"
        print(line + (f" {refused}" if refused else ""), file=self.log, flush=True)
