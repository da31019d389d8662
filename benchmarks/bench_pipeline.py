"""Input pipeline: does it feed training fast enough, and how much memory does it hold?

    python benchmarks/bench_pipeline.py          # full train[:90%]
    python benchmarks/bench_pipeline.py --json

Measures, in one process and interleaved over several rounds (so that a slow spell
on a shared machine hits both): the samples/s that `relunet train`'s default
configuration consumes (one epoch per round, after a warm-up) and the samples/s its
training pipeline delivers on its own (tfds's benchmark loop over two epochs of
batches, the first batch left out); the headroom is the median of the rounds' ratios.
Also the same for the textbook float32 chain `map(normalise) -> cache -> shuffle ->
batch -> prefetch` for comparison; the bytes each one caches. Then, in a subprocess,
the peak resident memory of a whole `relunet train --epochs 1` on the same split.

Augmentation's cost, interleaved the same way: the samples/s the pipeline delivers
without distortions, with `--preset robust`'s (affine and stroke thickness, 3 in 4
images) and with every distortion on every image (elastic included, at its default
strength), and the samples/s `--preset robust`'s network trains with and without its
distortions.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import statistics
import subprocess
import sys
import tempfile
import time

from relunet.base.quiet import import_tensorflow_quietly


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--train-split", default="train[:90%]")
    parser.add_argument("--rounds", type=int, default=4, help="interleaved measurement rounds")
    parser.add_argument("--skip-rss", action="store_true", help="skip the relunet train subprocess")
    parser.add_argument("--json", action="store_true", help="print one JSON object")
    args = parser.parse_args()

    # First, while this process is small: a forked child's peak memory counts the
    # parent's pages until it execs.
    peak_rss = None if args.skip_rss else peak_rss_of_train(args.train_split)
    import_tensorflow_quietly()
    import tensorflow as tf
    import tensorflow_datasets as tfds

    from relunet import data
    from relunet.config import ModelConfig, OptimConfig, TrainConfig, take
    from relunet.training.model import build_model

    tfds.disable_progress_bar()
    config = TrainConfig()
    (raw,) = data.load_tfds(data.find_source(verbose=False), [args.train_split])
    start = time.perf_counter()
    arrays = data.load_arrays(raw)
    decode_seconds = time.perf_counter() - start
    steps = data.steps_per_epoch(arrays, config.batch_size)

    model = build_model(take(ModelConfig, config), take(OptimConfig, config))
    batches = data.training_pipeline(arrays, data.PipelineConfig.of(config))
    model.fit(batches, epochs=1, verbose=0, shuffle=False)  # warm-up
    consumed, delivered = [], []
    for _ in range(args.rounds):
        start = time.perf_counter()
        model.fit(batches, epochs=1, verbose=0, shuffle=False)  # one pass: every image once
        consumed.append(len(arrays) / (time.perf_counter() - start))
        delivered.append(pipeline_rate(tfds, batches.repeat(), 2 * steps, config.batch_size))
    headroom = statistics.median(d / c for d, c in zip(delivered, consumed, strict=True))

    def textbook():
        normalised = raw.map(data.normalize, num_parallel_calls=tf.data.AUTOTUNE).cache()
        return (
            normalised.shuffle(60_000, seed=config.seed)
            .batch(config.batch_size)
            .prefetch(tf.data.AUTOTUNE)
        )

    for _ in textbook():  # fill its cache first, as after a first epoch
        pass
    textbook_rate = pipeline_rate(tfds, textbook().repeat(), 2 * steps, config.batch_size)
    augmentation = augmentation_cost(tfds, arrays, args.rounds)

    result = {
        "benchmark": "pipeline",
        "train_examples": len(arrays),
        "decode_seconds": round(decode_seconds, 2),
        "training_consumes_samples_per_second": round(statistics.median(consumed)),
        "pipeline_delivers_samples_per_second": round(statistics.median(delivered)),
        "headroom": round(headroom, 1),
        "cache_bytes": int(arrays.images.shape.num_elements() + 4 * len(arrays)),
        "textbook_float32_pipeline_samples_per_second": round(textbook_rate),
        "textbook_float32_cache_bytes": len(arrays) * (28 * 28 * 4 + 10 * 4),
        "train_peak_rss_mb": peak_rss,
        **augmentation,
        "machine": f"{platform.machine()}, {os.cpu_count()} cores",
    }
    if args.json:
        print(json.dumps(result))
    else:
        for key, value in result.items():
            print(f"{key:>45}: {value}")


def augmentation_cost(tfds, arrays, rounds: int) -> dict:
    """Samples/s delivered and trained with and without distortions (module docstring)."""
    from relunet import data
    from relunet.config import PRESETS, AugmentConfig, ModelConfig, OptimConfig, TrainConfig, take
    from relunet.training.model import build_model

    robust = TrainConfig(**{**PRESETS["robust"], "epochs": 1})
    everything = AugmentConfig(augment=1.0)  # elastic too, at its default strength
    augments = {"none": None, "robust": take(AugmentConfig, robust), "every": everything}
    steps = data.steps_per_epoch(arrays, robust.batch_size)

    def pipeline(augment):
        return data.training_pipeline(
            arrays,
            data.PipelineConfig(batch_size=robust.batch_size, seed=robust.seed, augment=augment),
        )

    model = build_model(take(ModelConfig, robust), take(OptimConfig, robust), decay_steps=steps)
    model.fit(pipeline(None), epochs=1, verbose=0, shuffle=False)  # warm-up
    delivered = {name: [] for name in augments}
    trained = {name: [] for name in ("none", "robust")}
    for _ in range(rounds):
        for name, augment in augments.items():
            rate = pipeline_rate(tfds, pipeline(augment).repeat(), steps, robust.batch_size)
            delivered[name].append(rate)
        for name in trained:
            start = time.perf_counter()
            model.fit(pipeline(augments[name]), epochs=1, verbose=0, shuffle=False)
            trained[name].append(len(arrays) / (time.perf_counter() - start))
    return {
        **{
            f"pipeline_{name}_augmentation_samples_per_second": round(statistics.median(rates))
            for name, rates in delivered.items()
        },
        **{
            f"robust_network_trains_{name}_augmentation_samples_per_second": round(
                statistics.median(rates)
            )
            for name, rates in trained.items()
        },
    }


def pipeline_rate(tfds, dataset, num_batches: int, batch_size: int) -> float:
    """Samples per second over num_batches batches, the first (setup) batch excluded."""
    result = tfds.core.utils.benchmark.raw_benchmark(
        dataset, num_iter=num_batches, batch_size=batch_size
    )
    return result.examples_per_second(include_first=False)


def peak_rss_of_train(split: str) -> float:
    """Peak resident memory (MB) of `relunet train --epochs 1` on the split."""
    with tempfile.TemporaryDirectory() as tmp:
        command = [
            sys.executable,
            "-m",
            "relunet.cli",
            "train",
            "--epochs",
            "1",
            "--train-split",
            split,
            "--run-dir",
            os.path.join(tmp, "run"),
            "--verbose",
            "0",
        ]
        subprocess.run(command, check=True, capture_output=True)
    return round(resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024, 1)


if __name__ == "__main__":
    main()
