"""What people write, read by `--preset robust`: numbers, single digits, and letters,
symbols and doodles that should be answered "not a digit"; calibration before and after.

    python benchmarks/bench_reading.py                   # seeds 1, 2, 3
    python benchmarks/bench_reading.py --seeds 1 --json

The sets (benchmarks/reading_sets.py) are photos of dark ink on paper made by the
project's own code: numbers of 2 to 6 of MNIST's *test* digits written side by side
(with gaps, with overlapping boxes, touching), single test digits, letters and symbols
in the fonts matplotlib ships, doodles drawn by code; and the optdigits scans of 13
people's handwriting (bench_real_digits.py). The model is trained on MNIST's training
split and shapes of relunet.data.nondigits, calibrated on train[55000:]; none of these
images is used to train it or to fit its temperature or threshold.

The letters and symbols hold every character, O, l, S, Z, / and ( among them, which no
reader can be asked to call "not a digit"; the issue's own letters leave those out. So
each is also read as `letters-unlike-digits` and `symbols-unlike-digits`: the same
images less those of relunet.data.glyphs.PASS_AS_DIGITS, the list the training leaves
out for the same reason.

Each model is one `relunet train --preset robust --seed S` process, timed from just
before it is spawned until it has exited; each set is read with `relunet evaluate
--images` (its JSON), the path a user's folder takes. ECE before calibration is the
same model's on MNIST's test split with the temperature set back to 1.

Rejection is also scored as the out-of-distribution literature scores it: AUROC and the
false-positive rate at 95% true-positive rate of each rejected set against the single
MNIST test digits on paper, from `relunet predict --json`. An image's score is its
least sure digit's calibrated probability, and 0 when the reader found something in it
that is not a digit (the finder's "other", a misplaced sign, too many marks): the
score whose threshold makes the operating decision.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

import numpy as np
from bench_real_digits import run, write_real_digits
from reading_sets import SETS, write_sets
from scipy import stats

from relunet.inference.image_folders import IMAGE_SUFFIXES  # what evaluate --images reads

UNLIKE = ("letters-unlike-digits", "symbols-unlike-digits")  # made by unlike_digits
REJECT = ("letters", "symbols", "doodles", *UNLIKE)


def unlike_digits(sets: Path) -> dict[str, int]:
    """Copies of the letters and symbols that cannot pass for a digit (every character
    but relunet.data.glyphs.PASS_AS_DIGITS: no O, l, S, Z, /, ( and the like), as the
    issue's own set of letters is made, in sets/<set>-unlike-digits/none/."""
    from relunet.data.glyphs import PASS_AS_DIGITS

    counts = {}
    for name in ("letters", "symbols"):
        out = sets / f"{name}-unlike-digits" / "none"
        out.mkdir(parents=True)
        files = sorted((sets / name / "none").iterdir())
        kept = [f for f in files if chr(int(f.stem.split("_")[1])) not in PASS_AS_DIGITS]
        for f in kept:
            shutil.copy(f, out / f.name)
        counts[out.parent.name] = len(kept)
    return counts


def ece_on_test(run_dir: Path, data_dir: str) -> dict:
    """The expected calibration error on MNIST's test split at temperature 1 and at the
    fitted one."""
    import relunet.base.quiet

    relunet.base.quiet.import_tensorflow_quietly()
    from relunet.data import idx, to_inputs
    from relunet.training.calibrate import ece
    from relunet.training.model import load_model

    model = load_model(str(run_dir / "best.keras"))
    test = idx.read_folder(data_dir).splits["test"]
    fitted = model.temperature
    scores = {}
    for name, temperature in (("before", 1.0), ("after", fitted)):
        model.temperature = temperature
        p = model.probabilities(to_inputs(test.images)).numpy()
        scores[f"ece_{name}"] = round(ece(p, test.labels), 5)
    model.temperature = fitted
    return scores


def scores(run_dir: Path, folder: Path) -> np.ndarray:
    """Each image's score of being a digit (see the module's docstring)."""
    files = sorted(str(f) for f in folder.rglob("*") if f.suffix.lower() in IMAGE_SUFFIXES)
    answers = json.loads(run("predict", "--model", str(run_dir), "--json", *files))
    threshold = json.loads((run_dir / "metrics.json").read_text())["calibration"]
    below = float(threshold.get("reject_below", 0.0)) if threshold else 0.0
    out = []
    for answer in answers:
        least = min((d["probability"] for d in answer["per_digit"]), default=0.0)
        found_other = answer["not_a_digit"] and least >= below  # rejected, not for its p
        out.append(0.0 if found_other or not answer["digit_found"] else least)
    return np.array(out)


def auroc_fpr95(inside: np.ndarray, outside: np.ndarray) -> tuple[float, float]:
    """AUROC (ties count half) and the share of `outside` scored at least the score that
    keeps 95% of `inside`."""
    ranks = stats.rankdata(np.concatenate([inside, outside]))
    auroc = (ranks[: len(inside)].sum() - len(inside) * (len(inside) + 1) / 2) / (
        len(inside) * len(outside)
    )
    cut = np.quantile(inside, 0.05)
    return round(float(auroc), 4), round(float(np.mean(outside >= cut)), 4)


def one_seed(
    seed: int, sets: Path, extra: list[str], tmp: Path, data_dir: str, trained: Path | None
) -> dict:
    run_dir = trained or tmp / f"robust-{seed}"
    start = time.perf_counter()
    if trained is None:
        run("train", "--preset", "robust", "--seed", str(seed), "--run-dir", str(run_dir), *extra)
    seconds = time.perf_counter() - start
    metrics = json.loads((run_dir / "metrics.json").read_text())
    if trained is not None:  # its own seed, and not trained here
        seed = json.loads((run_dir / "config.json").read_text())["seed"]
    row = {
        "seed": seed,
        "train_seconds_start_to_exit": None if trained else round(seconds, 1),
        "mnist_test_accuracy": metrics["test_accuracy"],
        "mnist_test_rejected": metrics["test_rejected"],
        "mnist_test_ece": metrics["test_ece"],
        **{f"mnist_test_{k}": v for k, v in ece_on_test(run_dir, data_dir).items()},
    }
    for name in (*SETS, *UNLIKE, "optdigits"):
        read = json.loads(
            run("evaluate", "--model", str(run_dir), "--images", str(sets / name), "--json")
        )
        if name in REJECT:
            row[f"{name}_answered_not_a_digit"] = read["none"]["answered"] / read["none"]["images"]
        else:
            row[f"{name}_read_exactly"] = read["accuracy"]
        if name in ("singles", "optdigits"):
            row[f"{name}_ece"] = read["ece"]
            row[f"{name}_not_a_digit"] = read["not_a_digit"] / read["examples"]
    digits = scores(run_dir, sets / "singles")
    for name in REJECT:
        auroc, fpr = auroc_fpr95(digits, scores(run_dir, sets / name))
        row[f"{name}_auroc"], row[f"{name}_fpr_at_95_tpr"] = auroc, fpr
    return row


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", nargs="+", type=int, default=[1, 2, 3])
    parser.add_argument(
        "--extra", nargs=argparse.REMAINDER, default=[], help="more flags for relunet train"
    )
    parser.add_argument("--json", action="store_true", help="print one JSON object")
    parser.add_argument(
        "--run-dir", type=Path, help="read with this trained run instead (one seed, not timed)"
    )
    args = parser.parse_args()
    data_dir = os.environ.get("RELUNET_DATA_DIR")
    if not data_dir:
        raise SystemExit("bench_reading.py: error: set RELUNET_DATA_DIR to the MNIST IDX files")

    with tempfile.TemporaryDirectory(prefix="relunet-reading-") as tmp:
        sets = Path(tmp) / "sets"
        counts = write_sets(sets, data_dir)
        counts.update(unlike_digits(sets))
        counts["optdigits"] = write_real_digits(sets / "optdigits")
        if not args.json:
            print("sets: " + ", ".join(f"{k} {v}" for k, v in counts.items()), flush=True)
        rows = []
        for seed in args.seeds[:1] if args.run_dir else args.seeds:  # a trained run: once
            row = one_seed(seed, sets, args.extra, Path(tmp), data_dir, args.run_dir)
            rows.append(row)
            if not args.json:
                print(json.dumps(row), flush=True)
    result = {
        "benchmark": "reading",
        "sets": counts,
        "rows": rows,
        "machine": f"{platform.machine()}, {os.cpu_count()} cores",
    }
    if args.json:
        print(json.dumps(result))


if __name__ == "__main__":
    main()
