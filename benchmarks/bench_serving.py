"""Serving: latency and throughput of the exported SavedModel's serving signature.

    python benchmarks/bench_serving.py                  # exports a freshly built model
    python benchmarks/bench_serving.py --model saved_models/relunet/1 --json

Loads the SavedModel with `tf.saved_model.load` and calls its `serving_default`
signature, as a TensorFlow Serving server does in-process: raw uint8 images in,
probabilities and classes out. Batch-1 latency is measured over many single calls
(p50 and p99, after a warm-up); throughput with batches of 1024 images. The weights
do not change the cost, so without --model a built, untrained model of the default
architecture is exported to a temporary folder.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import tempfile
import time

from relunet.base.quiet import import_tensorflow_quietly


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", help="a SavedModel version folder (default: export a fresh one)")
    parser.add_argument("--calls", type=int, default=2000, help="batch-1 calls to time")
    parser.add_argument("--batches", type=int, default=50, help="batch-1024 calls to time")
    parser.add_argument("--json", action="store_true", help="print one JSON object")
    args = parser.parse_args()

    import_tensorflow_quietly()
    import numpy as np
    import tensorflow as tf

    with tempfile.TemporaryDirectory(prefix="relunet-serving-") as tmp:
        path = args.model or export_fresh_model(tmp)
        serve = tf.saved_model.load(path).signatures["serving_default"]
        rng = np.random.default_rng(0)
        one = tf.constant(rng.integers(0, 256, (1, 28, 28, 1), np.uint8))
        many = tf.constant(rng.integers(0, 256, (1024, 28, 28, 1), np.uint8))

        for _ in range(50):  # warm-up
            serve(images=one)
        latencies = []
        for _ in range(args.calls):
            start = time.perf_counter()
            serve(images=one)["class"].numpy()
            latencies.append(time.perf_counter() - start)
        serve(images=many)
        start = time.perf_counter()
        for _ in range(args.batches):
            serve(images=many)["class"].numpy()
        throughput = 1024 * args.batches / (time.perf_counter() - start)

    latencies.sort()
    result = {
        "benchmark": "serving",
        "model": args.model or "fresh default ReluNet (784-256-256-10)",
        "batch1_p50_ms": round(1000 * statistics.median(latencies), 3),
        "batch1_p99_ms": round(1000 * latencies[int(0.99 * (len(latencies) - 1))], 3),
        "batch1024_images_per_second": round(throughput),
        "machine": f"{platform.machine()}, {os.cpu_count()} cores",
    }
    if args.json:
        print(json.dumps(result))
    else:
        for key, value in result.items():
            print(f"{key:>28}: {value}")


def export_fresh_model(folder: str) -> str:
    from relunet.inference.export import export_saved_model
    from relunet.training.model import build_model

    return str(export_saved_model(build_model(), os.path.join(folder, "relunet"), verbose=False))


if __name__ == "__main__":
    main()
