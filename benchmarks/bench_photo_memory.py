"""Peak memory of `relunet predict` on one large photo, by format and size: what the
pixel budget (relunet.reading.image_headers) lets in, and what it costs.

    python benchmarks/bench_photo_memory.py --model saved_models/relunet
    python benchmarks/bench_photo_memory.py --model saved_models/relunet --json

Draws a page with a 7 on it (PIL, RGB, as a phone saves a photo: JPEG 4:2:0 at quality
90) at each size, writes it as each format, and runs `relunet predict --model MODEL
FILE` once per file in a process of its own; its peak resident set is the kernel's
(os.wait4's ru_maxrss), its time the wall clock from start to exit. A 28x28 PNG gives
the command's own footprint (TensorFlow and the model loaded), so each photo's cost is
the difference.
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

from PIL import Image, ImageDraw

PHOTOS = (  # name, width, height, format, PIL save options
    ("digit_28x28.png", 28, 28, "PNG", {}),
    ("photo_48mp.jpg", 8000, 6000, "JPEG", {"quality": 90}),
    ("photo_108mp.jpg", 12000, 9000, "JPEG", {"quality": 90}),
    ("photo_108mp_progressive.jpg", 12000, 9000, "JPEG", {"quality": 90, "progressive": True}),
    ("photo_200mp.jpg", 16320, 12240, "JPEG", {"quality": 90}),
    ("photo_200mp_progressive.jpg", 16320, 12240, "JPEG", {"quality": 90, "progressive": True}),
    ("photo_48mp.png", 8000, 6000, "PNG", {"compress_level": 1}),
)


def page(width: int, height: int) -> Image.Image:
    """A light page with a dark 7 across its middle."""
    image = Image.new("RGB", (width, height), (225, 220, 210))
    w, h = width, height
    stroke = max(1, min(w, h) // 18)
    ImageDraw.Draw(image).line(
        [(0.37 * w, 0.28 * h), (0.62 * w, 0.28 * h), (0.46 * w, 0.78 * h)],
        fill=(30, 30, 40),
        width=stroke,
    )
    return image


def peak(model: str, path: str) -> dict:
    """`relunet predict --model MODEL PATH` in a process of its own: its exit status,
    peak resident MB, seconds, and what it printed (its last line)."""
    with tempfile.TemporaryFile("w+") as said:
        start = time.perf_counter()
        process = subprocess.Popen(
            [sys.executable, "-m", "relunet.cli", "predict", "--model", model, path],
            stdout=said,
            stderr=subprocess.STDOUT,
            text=True,
        )
        _, status, usage = os.wait4(process.pid, 0)  # the usage of this process alone
        seconds = time.perf_counter() - start
        process.returncode = os.waitstatus_to_exitcode(status)
        said.seek(0)
        lines = [line for line in said.read().splitlines() if line.strip()]
    return {
        "exit": process.returncode,
        "peak_rss_mb": round(usage.ru_maxrss / 1024, 1),
        "seconds": round(seconds, 2),
        "said": lines[-1][-160:] if lines else "",
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", required=True, help="a folder of versions, as export writes")
    parser.add_argument("--only", nargs="*", help="these files of PHOTOS only")
    parser.add_argument("--json", action="store_true", help="one JSON line, nothing else")
    args = parser.parse_args()
    results = {}
    with tempfile.TemporaryDirectory() as folder:
        for name, width, height, kind, options in PHOTOS:
            if args.only and name not in args.only:
                continue
            path = os.path.join(folder, name)
            page(width, height).save(path, kind, **options)
            results[name] = {"megapixels": round(width * height / 1e6, 1), **peak(args.model, path)}
            results[name]["file_mb"] = round(os.path.getsize(path) / 1e6, 2)
            os.remove(path)
    machine = f"{platform.machine()}, {os.cpu_count()} cores, Python {platform.python_version()}"
    if args.json:
        print(json.dumps({"photos": results, "machine": machine}))
        return
    print(f"{'file':30} {'MP':>6} {'file MB':>8} {'peak MB':>8} {'s':>6}  exit  said")
    for name, r in results.items():
        print(
            f"{name:30} {r['megapixels']:6} {r['file_mb']:8} {r['peak_rss_mb']:8} "
            f"{r['seconds']:6}  {r['exit']:4}  {r['said']}"
        )
    print(machine)


if __name__ == "__main__":
    main()
