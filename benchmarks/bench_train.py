"""Training throughput: relunet's default against stock Keras, a PyTorch loop and the hardware.

    python benchmarks/bench_train.py                       # full MNIST train[:90%], 5 epochs each
    python benchmarks/bench_train.py --json
    python benchmarks/bench_train.py --train-split 'train[:2000]' --epochs 1   # a smoke run

Three trainers of the lab's network (784-256-256-10, RandomNormal(0.05), Adam 1e-3,
batch 128) on the same images, epochs interleaved A B C A B C so the machine's drift
hits all alike, each epoch counted by the steps really taken (optimizer iterations,
PyTorch's optimizer steps):

  stock_keras  a keras.Sequential with compile() and fit(), Keras's defaults
  relunet      build_model() with relunet train's defaults (XLA, 64 steps per call)
  pytorch      an eager PyTorch loop (torch.nn, torch.optim.Adam), if PyTorch is installed
               (pip install torch==2.13.0; a benchmark extra, never a relunet dependency)

The hardware limit is the rate of exactly one training step's matrix multiplications
(forward, weight gradients, input gradients of all but the first layer) at batch 128,
timed with each library and taking the fastest: images/s the cores allow if nothing
but those GEMMs ran.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import time

WIDTH, DEPTH, BATCH, LR = 256, 2, 128, 1e-3


def shapes(width: int = WIDTH, depth: int = DEPTH) -> list[tuple[int, int]]:
    return [(784, width)] + [(width, width)] * (depth - 1) + [(width, 10)]


def flops_per_sample(width: int = WIDTH, depth: int = DEPTH) -> int:
    """Multiply-adds x 2 of one training step per image: forward, weight gradients, and
    input gradients of every layer but the first (nobody needs the image's gradient)."""
    layers = shapes(width, depth)
    forward = sum(2 * i * o for i, o in layers)
    return 2 * forward + sum(2 * i * o for i, o in layers[1:])


def tf_gemm_rate(repeats: int = 300) -> float:
    """GFLOP/s of one step's matmuls in TensorFlow, compiled with XLA."""
    import tensorflow as tf

    xs = [tf.random.normal((BATCH, i)) for i, _ in shapes()]
    ws = [tf.random.normal((i, o)) for i, o in shapes()]
    gs = [tf.random.normal((BATCH, o)) for _, o in shapes()]

    @tf.function(jit_compile=True)
    def step(xs, ws, gs):
        total = 0.0
        for k, (x, w, g) in enumerate(zip(xs, ws, gs, strict=True)):
            total += tf.reduce_sum(tf.matmul(x, w))
            total += tf.reduce_sum(tf.matmul(x, g, transpose_a=True))
            if k:
                total += tf.reduce_sum(tf.matmul(g, w, transpose_b=True))
        return total

    step(xs, ws, gs)
    start = time.perf_counter()
    for _ in range(repeats):
        step(xs, ws, gs)
    return flops_per_sample() * BATCH * repeats / (time.perf_counter() - start) / 1e9


def torch_gemm_rate(repeats: int = 300) -> float | None:
    """GFLOP/s of one step's matmuls in PyTorch (oneDNN/MKL kernels), or None without it."""
    try:
        import torch
    except ImportError:
        return None
    xs = [torch.randn(BATCH, i) for i, _ in shapes()]
    ws = [torch.randn(i, o) for i, o in shapes()]
    gs = [torch.randn(BATCH, o) for _, o in shapes()]

    def step():
        for k, (x, w, g) in enumerate(zip(xs, ws, gs, strict=True)):
            x @ w
            x.T @ g
            if k:
                g @ w.T

    with torch.no_grad():
        step()
        start = time.perf_counter()
        for _ in range(repeats):
            step()
    return flops_per_sample() * BATCH * repeats / (time.perf_counter() - start) / 1e9


def keras_trainers(images, labels):
    """One-epoch functions for stock Keras and relunet: each returns (images, seconds)."""
    import keras

    from relunet import data
    from relunet.training.model import build_model

    arrays = data.Arrays(images, labels)
    keras.utils.set_random_seed(777)
    stock = keras.Sequential(
        [
            keras.Input((28, 28, 1)),
            keras.layers.Flatten(),
            *[
                keras.layers.Dense(WIDTH, activation="relu", kernel_initializer="random_normal")
                for _ in range(DEPTH)
            ],
            keras.layers.Dense(10, kernel_initializer="random_normal"),
        ]
    )
    stock.compile(
        optimizer=keras.optimizers.Adam(LR),
        loss=keras.losses.CategoricalCrossentropy(from_logits=True),
        metrics=["accuracy"],
    )
    keras.utils.set_random_seed(777)
    models = {"stock_keras": stock, "relunet": build_model()}
    batches = {
        name: data.training_pipeline(arrays, data.PipelineConfig(batch_size=BATCH, seed=777))
        for name in models
    }

    def epoch(name):
        model = models[name]
        before = int(keras.ops.convert_to_numpy(model.optimizer.iterations))
        start = time.perf_counter()
        model.fit(batches[name], epochs=1, verbose=0, shuffle=False)
        seconds = time.perf_counter() - start
        steps = int(keras.ops.convert_to_numpy(model.optimizer.iterations)) - before
        return min(steps * BATCH, len(arrays)), seconds  # every step a full batch but the last

    return {name: (lambda name=name: epoch(name)) for name in models}


def torch_trainer(images, labels):
    """One-epoch function for an eager PyTorch loop of the same network, or None."""
    try:
        import torch
    except ImportError:
        return None
    torch.manual_seed(777)
    layers = []
    for i, (n_in, n_out) in enumerate(shapes()):
        linear = torch.nn.Linear(n_in, n_out)
        torch.nn.init.normal_(linear.weight, std=0.05)
        torch.nn.init.normal_(linear.bias, std=0.05)
        layers += [linear] + ([torch.nn.ReLU()] if i < DEPTH else [])
    model = torch.nn.Sequential(torch.nn.Flatten(), *layers)
    optimizer = torch.optim.Adam(model.parameters(), lr=LR)
    x = torch.from_numpy(images.numpy().astype("float32") / 255.0)
    y = torch.from_numpy(labels.numpy().astype("int64"))
    generator = torch.Generator().manual_seed(777)

    def epoch():
        order = torch.randperm(len(y), generator=generator)
        start, count = time.perf_counter(), 0
        for first in range(0, len(y), BATCH):
            index = order[first : first + BATCH]
            optimizer.zero_grad(set_to_none=True)
            loss = torch.nn.functional.cross_entropy(model(x[index]), y[index])
            loss.backward()
            optimizer.step()
            count += len(index)
        return count, time.perf_counter() - start

    return epoch


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--train-split", default="train[:90%]")
    parser.add_argument("--epochs", type=int, default=5, help="measured epochs of each")
    parser.add_argument("--json", action="store_true", help="print one JSON object")
    args = parser.parse_args()

    from relunet import data

    arrays = data.split_arrays(data.find_source(verbose=False), args.train_split)
    trainers = keras_trainers(arrays.images, arrays.labels)
    pytorch = torch_trainer(arrays.images, arrays.labels)
    if pytorch is not None:
        trainers["pytorch"] = pytorch
    for run in trainers.values():  # warm-up: tracing, XLA compilation, allocator
        run()
    rates = {name: [] for name in trainers}
    for _ in range(args.epochs):
        for name, run in trainers.items():
            images, seconds = run()
            rates[name].append(images / seconds)
    medians = {name: statistics.median(v) for name, v in rates.items()}
    gemm = {"tensorflow_xla": tf_gemm_rate(), "pytorch": torch_gemm_rate()}
    fastest = max(v for v in gemm.values() if v)
    limit = fastest * 1e9 / flops_per_sample()
    result = {
        "benchmark": "train",
        "train_examples": len(arrays),
        "samples_per_second": {n: [round(v) for v in values] for n, values in rates.items()},
        "median_samples_per_second": {n: round(v) for n, v in medians.items()},
        "relunet_over_stock_keras": round(medians["relunet"] / medians["stock_keras"], 2),
        "relunet_over_pytorch": round(medians["relunet"] / medians["pytorch"], 2)
        if "pytorch" in medians
        else None,
        "flops_per_sample": flops_per_sample(),
        "gemm_gflops": {k: round(v, 1) if v else None for k, v in gemm.items()},
        "hardware_limit_samples_per_second": round(limit),
        "fraction_of_limit": {n: round(v / limit, 2) for n, v in medians.items()},
        "machine": f"{platform.machine()}, {os.cpu_count()} cores",
    }
    if args.json:
        print(json.dumps(result))
        return
    for name, values in rates.items():
        print(
            f"{name:>12}: "
            + " ".join(f"{v:8,.0f}" for v in values)
            + f"  median {medians[name]:8,.0f} images/s ({result['fraction_of_limit'][name]:.0%} "
            "of the limit)"
        )
    print(
        f"relunet / stock keras {result['relunet_over_stock_keras']}x, relunet / pytorch "
        f"{result['relunet_over_pytorch']}x"
    )
    print(
        f"one step's GEMMs: {result['gemm_gflops']} GFLOP/s; {flops_per_sample():,} FLOP an "
        f"image; hardware limit {limit:,.0f} images/s"
    )


if __name__ == "__main__":
    main()
