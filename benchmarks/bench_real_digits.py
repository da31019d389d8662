"""Digits people write: each model on MNIST's test split and on real handwriting that is
not MNIST, read as a user's image files.

    python benchmarks/bench_real_digits.py                       # lab, best, robust; seed 1
    python benchmarks/bench_real_digits.py --presets robust --seeds 1 2 3 --json

The handwriting: scikit-learn, which relunet installs, ships the UCI "optical
recognition of handwritten digits" test set (`sklearn.datasets.load_digits`): 1,797
digits written on forms by 13 people (Alpaydin and Kaynak, 1998), scanned and reduced
to 8x8 cells of 0..16. None of them is from MNIST. Each is written, unchanged but for
its format, as an 8-bit greyscale PNG of dark ink on light paper (pixel = 255 - v *
255 / 16), into subfolders 0 to 9, and every model reads those files with
`relunet evaluate --images`: the path a user's own folder of digits takes, through the
same preprocessing as `relunet predict` and the exported serving_bytes signature. The
models never see these digits in training.

Each model is one `relunet train --preset P` process on MNIST's training split, timed
from just before it is spawned until it has exited; its MNIST test accuracy is the one
it wrote to metrics.json.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

_RELUNET = [sys.executable, "-m", "relunet.cli"]
PRESETS = ("lab", "best", "robust")


def write_real_digits(folder: Path) -> int:
    """The optdigits test set as PNG files in subfolders 0 to 9; returns how many."""
    import tensorflow as tf
    from sklearn.datasets import load_digits

    digits = load_digits()
    pixels = (255 - np.rint(digits.images * 255 / 16)).astype(np.uint8)  # dark on light
    for i, (image, label) in enumerate(zip(pixels, digits.target, strict=True)):
        (folder / str(label)).mkdir(parents=True, exist_ok=True)
        png = tf.io.encode_png(image[..., None]).numpy()
        (folder / str(label) / f"optdigits-{i:04d}.png").write_bytes(png)
    return len(pixels)


def run(*args: str) -> str:
    done = subprocess.run([*_RELUNET, *args], capture_output=True, text=True)
    if done.returncode != 0:
        raise SystemExit(f"relunet {' '.join(args)} failed: {done.stderr[-2000:]}")
    return done.stdout


def one_model(preset: str, seed: int, images: Path, extra: list[str], tmp: Path) -> dict:
    """Train with `--preset`, timed start to exit; its MNIST test and real-digit accuracy."""
    run_dir = tmp / f"{preset}-{seed}"
    start = time.perf_counter()
    run("train", "--preset", preset, "--seed", str(seed), "--run-dir", str(run_dir), *extra)
    seconds = time.perf_counter() - start
    metrics = json.loads((run_dir / "metrics.json").read_text())
    real = json.loads(run("evaluate", "--model", str(run_dir), "--images", str(images), "--json"))
    return {
        "preset": preset,
        "seed": seed,
        "mnist_test_accuracy": metrics["test_accuracy"],
        "real_digits_accuracy": real["accuracy"],
        "real_digits": real["examples"],
        "train_seconds_start_to_exit": round(seconds, 1),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--presets", nargs="+", default=list(PRESETS), choices=PRESETS)
    parser.add_argument("--seeds", nargs="+", type=int, default=[1])
    parser.add_argument(
        "--extra",
        nargs=argparse.REMAINDER,
        default=[],
        help="more flags for relunet train (a smaller split, for a smoke test)",
    )
    parser.add_argument("--json", action="store_true", help="print one JSON object")
    args = parser.parse_args()

    with tempfile.TemporaryDirectory(prefix="relunet-real-digits-") as tmp:
        images = Path(tmp) / "optdigits"
        count = write_real_digits(images)
        if not args.json:
            print(f"real digits: {count} optdigits PNGs in {images}", flush=True)
        rows = []
        for preset in args.presets:
            for seed in args.seeds:
                row = one_model(preset, seed, images, args.extra, Path(tmp))
                rows.append(row)
                if not args.json:
                    print(
                        f"{preset:>6} seed {seed}: MNIST test {row['mnist_test_accuracy']:.4f}, "
                        f"real digits {row['real_digits_accuracy']:.4f}, trained in "
                        f"{row['train_seconds_start_to_exit']:.1f} s from start to exit",
                        flush=True,
                    )
    result = {
        "benchmark": "real_digits",
        "source": "sklearn.datasets.load_digits (UCI optdigits test set, 1,797 digits, 13 writers)",
        "rows": rows,
        "machine": f"{platform.machine()}, {os.cpu_count()} cores",
    }
    if args.json:
        print(json.dumps(result))


if __name__ == "__main__":
    main()
