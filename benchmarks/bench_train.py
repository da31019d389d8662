"""Training throughput: relunet's default configuration against stock Keras, interleaved.

    python benchmarks/bench_train.py                 # 6 measured epochs each, full train[:90%]
    python benchmarks/bench_train.py --json

Both train the lab's network (784-256-256-10, ReLU, RandomNormal init, Adam 1e-3,
batch 128) on the same in-memory batches. The reference is what the Keras guides
write: a `keras.Sequential` compiled with `CategoricalCrossentropy(from_logits=True)`
and `metrics=["accuracy"]`, trained by the default `fit`. relunet's is `ReluNet` with
its custom `train_step` and the default TrainConfig (XLA, steps_per_execution). After
one warm-up epoch each, epochs alternate A B A B ...; the ratio reported is the median
of the ratios of neighbouring epochs (each pair ran back to back, so a slow spell on a
shared machine slows both), and the ratio of the two medians is given beside it.

The script also times the matmuls of one training step on their own (the forward
pass, the weight gradients and the input gradients of every layer, compiled with XLA)
to estimate the compute-bound limit, and reports how much of it each model reaches.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--epochs", type=int, default=6, help="measured epochs per model")
    parser.add_argument("--train-split", default="train[:90%]")
    parser.add_argument("--threads", type=int, default=None, help="TensorFlow intra-op threads")
    parser.add_argument(
        "--steps-per-execution",
        type=int,
        default=None,
        help="override relunet's default, to measure the lever",
    )
    parser.add_argument("--json", action="store_true", help="print one JSON object")
    args = parser.parse_args()

    from relunet.train import set_threads

    set_threads(args.threads)
    import keras
    import tensorflow as tf

    from relunet import data
    from relunet.config import TrainConfig
    from relunet.model import build_model

    config = TrainConfig()
    if args.steps_per_execution:
        config.steps_per_execution = args.steps_per_execution
    (raw,) = data.load_tfds(data.find_source(verbose=False), [args.train_split])
    arrays = data.load_arrays(raw)
    steps = data.steps_per_epoch(arrays, config.batch_size)
    keras.utils.set_random_seed(config.seed)

    def reference() -> keras.Model:
        model = keras.Sequential(
            [
                keras.Input((28, 28, 1)),
                keras.layers.Flatten(),
                keras.layers.Dense(
                    config.width, activation="relu", kernel_initializer="random_normal"
                ),
                keras.layers.Dense(
                    config.width, activation="relu", kernel_initializer="random_normal"
                ),
                keras.layers.Dense(10, kernel_initializer="random_normal"),
            ]
        )
        model.compile(
            optimizer=keras.optimizers.Adam(config.learning_rate),
            loss=keras.losses.CategoricalCrossentropy(from_logits=True),
            metrics=["accuracy"],
        )
        return model

    models = {
        "stock_keras": reference(),
        "relunet": build_model(
            config.width,
            config.depth,
            config.activation,
            config.init,
            config.learning_rate,
            config.jit_compile,
            steps_per_execution=config.steps_per_execution,
        ),
    }
    batches = {
        name: data.training_pipeline(arrays, config.batch_size, config.seed) for name in models
    }

    def one_epoch(name: str) -> float:
        model = models[name]
        before = int(keras.ops.convert_to_numpy(model.optimizer.iterations))
        start = time.perf_counter()
        model.fit(batches[name], epochs=1, verbose=0, shuffle=False)
        seconds = time.perf_counter() - start
        trained = int(keras.ops.convert_to_numpy(model.optimizer.iterations)) - before
        assert trained == steps, f"{name} trained {trained} steps in an epoch of {steps}"
        return len(arrays) / seconds  # one whole pass: every image once

    for name in models:  # warm-up: tracing and XLA compilation
        one_epoch(name)
    rates = {name: [] for name in models}
    for _ in range(args.epochs):
        for name in models:
            rates[name].append(one_epoch(name))
    medians = {name: statistics.median(values) for name, values in rates.items()}
    pair_ratio = statistics.median(
        r / s for r, s in zip(rates["relunet"], rates["stock_keras"], strict=True)
    )

    flops = flops_per_sample(config.width, config.depth)
    matmul_gflops = matmul_rate(tf, config.batch_size, config.width, config.depth)
    limit = matmul_gflops * 1e9 / flops
    result = {
        "benchmark": "train",
        "train_examples": len(arrays),
        "batch_size": config.batch_size,
        "relunet_config": {
            "jit_compile": config.jit_compile,
            "steps_per_execution": config.steps_per_execution,
            "threads": args.threads,
        },
        "reference_jit_compile": bool(models["stock_keras"].jit_compile),
        "samples_per_second": {name: [round(v) for v in values] for name, values in rates.items()},
        "median_samples_per_second": {name: round(v) for name, v in medians.items()},
        "ratio": round(pair_ratio, 2),
        "ratio_of_medians": round(medians["relunet"] / medians["stock_keras"], 2),
        "flops_per_sample": flops,
        "matmul_gflops": round(matmul_gflops, 1),
        "compute_limit_samples_per_second": round(limit),
        "fraction_of_limit": {name: round(v / limit, 2) for name, v in medians.items()},
        "machine": f"{platform.machine()}, {os.cpu_count()} cores",
    }
    if args.json:
        print(json.dumps(result))
        return
    for name, values in rates.items():
        print(
            f"{name:>12}: "
            + " ".join(f"{v:8,.0f}" for v in values)
            + f"  median {medians[name]:8,.0f} samples/s "
            f"({result['fraction_of_limit'][name]:.0%} of the limit)"
        )
    print(
        f"ratio relunet / stock keras: {result['ratio']:.2f}x (median of neighbouring epochs; "
        f"ratio of medians {result['ratio_of_medians']:.2f}x)"
    )
    print(
        f"training FLOPs per sample: {flops:,}; matmuls of one step: {matmul_gflops:.1f} GFLOP/s; "
        f"compute limit {limit:,.0f} samples/s"
    )


def flops_per_sample(width: int, depth: int) -> int:
    """Multiply-adds x 2 of one training step per sample: forward, weight gradients, and
    input gradients of every layer but the first (nobody needs the image's gradient)."""
    shapes = [(784, width)] + [(width, width)] * (depth - 1) + [(width, 10)]
    forward = sum(2 * i * o for i, o in shapes)
    input_gradients = sum(2 * i * o for i, o in shapes[1:])
    return 2 * forward + input_gradients


def matmul_rate(tf, batch: int, width: int, depth: int, repeats: int = 300) -> float:
    """GFLOP/s of exactly the matmuls in one training step, compiled with XLA."""
    shapes = [(784, width)] + [(width, width)] * (depth - 1) + [(width, 10)]
    xs = [tf.random.normal((batch, i)) for i, _ in shapes]
    ws = [tf.random.normal((i, o)) for i, o in shapes]
    gs = [tf.random.normal((batch, o)) for _, o in shapes]

    @tf.function(jit_compile=True)
    def step(xs, ws, gs):
        total = 0.0
        for k, (x, w, g) in enumerate(zip(xs, ws, gs, strict=True)):
            total += tf.reduce_sum(tf.matmul(x, w))  # forward
            total += tf.reduce_sum(tf.matmul(x, g, transpose_a=True))  # weight gradient
            if k:
                total += tf.reduce_sum(tf.matmul(g, w, transpose_b=True))  # input gradient
        return total

    step(xs, ws, gs)
    start = time.perf_counter()
    for _ in range(repeats):
        step(xs, ws, gs)
    seconds = (time.perf_counter() - start) / repeats
    return flops_per_sample(width, depth) * batch / seconds / 1e9


if __name__ == "__main__":
    main()
