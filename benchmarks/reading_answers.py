"""Every answer the reader gives on the project's reading sets, and whether two versions
of the code give the same ones: what a speed-up of the photo path must leave unchanged.

    python benchmarks/reading_answers.py --against OLD/src             # old vs this code
    python benchmarks/reading_answers.py --against OLD --model RUN_DIR   # with its finder
    python benchmarks/reading_answers.py --write tests/reading_sets_golden.json

The files (1,205 of them): the reading sets (benchmarks/reading_sets.py: numbers written
with gaps, overlapping and touching, single digits, letters, symbols, doodles) and 256
photos of each of bench_serve.py's two sets (one digit on pages of 120x120 to 900x700;
digits and numbers on pages of 200x200 to 1200x900), made from MNIST's test digits
(RELUNET_DATA_DIR). Each is read by relunet.reading.digits' traced `read_batch`, 32 files
a call as `relunet predict` reads them, with `--model`'s finder or without a model
(`apart`), and every output compared: the digits' pixels, their count and boxes, whether
ink was found, too many marks, the point, the sign and anything else. The number a
model reads follows from these (its digits classified, then the marks), so equal answers
here are equal numbers with any digit model.

`--against SRC` reads the files once with the code in SRC and once with this checkout's
(each in a process of its own, PYTHONPATH set) and names every file whose answers differ;
`--write` keeps this code's answers (counts, boxes, marks, and a digest of the pixels) as
the golden file tests/test_reading_sets.py compares against.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent
SOURCE = HERE.parent / "src"
CHUNK = 32  # files a call to read_batch (predict reads 16; each file is read on its own)
PHOTOS = 256  # photos of each of bench_serve.py's sets


def reading_files(data_dir: str, root: Path) -> dict[str, bytes]:
    """The reading sets written under root, and the photos of bench_serve.py's two sets:
    {name: file bytes}, in a fixed order."""
    sys.path.insert(0, str(HERE))
    from reading_sets import photos, write_sets

    write_sets(root, data_dir)
    found = {
        str(path.relative_to(root)): path.read_bytes()
        for path in sorted(root.rglob("*"))
        if path.is_file()
    }
    for single in (True, False):
        kind = "one digit" if single else "digits and numbers"
        for i, (data, _) in enumerate(photos(PHOTOS, data_dir, single=single)):
            found[f"photos/{kind}/{i}"] = data
    return found


def answers(files: dict[str, bytes], model: str | None = None) -> dict[str, np.ndarray]:
    """read_batch's outputs for every file, stacked in the files' order."""
    import tensorflow as tf

    from relunet.reading.digits import READ, reader

    find = None
    if model:
        from relunet.inference.classifier import load_classifier

        find = load_classifier(model).find
    read_many = reader(find)[1]
    data = list(files.values())
    parts = [read_many(tf.constant(data[i : i + CHUNK])) for i in range(0, len(data), CHUNK)]
    return {key: np.concatenate([p[key].numpy() for p in parts]) for key in READ}


FIELDS = ("count", "boxes", "found", "too_many", "point", "minus", "not_number", "pixels")


def golden(names: list[str], found: dict[str, np.ndarray]) -> dict[str, list]:
    """Each file's answers as the golden file keeps them, in FIELDS' order: the count,
    the boxes of the digits found, the marks, and a digest of the digits' pixels."""
    kept = {}
    for i, name in enumerate(names):
        count = int(found["count"][i])
        kept[name] = [
            count,
            found["boxes"][i][:count].tolist(),
            *(bool(found[key][i]) for key in ("found", "too_many")),
            int(found["point"][i]),
            *(bool(found[key][i]) for key in ("minus", "not_number")),
            hashlib.sha256(found["digits"][i].tobytes()).hexdigest()[:16],
        ]
    return kept


def differences(old: dict[str, np.ndarray], new: dict[str, np.ndarray], names: list[str]):
    """{file: [the outputs that differ]} for the files whose answers differ."""
    changed = {}
    for i, name in enumerate(names):
        keys = [k for k in old if not np.array_equal(old[k][i], new[k][i])]
        if keys:
            changed[name] = keys
    return changed


def _read_with(src: Path, folder: Path, model: str | None, out: Path) -> None:
    """This script's --dump, in a process that imports relunet from `src`."""
    command = [sys.executable, __file__, "--dump", str(out), "--files", str(folder)]
    env = {**os.environ, "PYTHONPATH": str(src), "TF_CPP_MIN_LOG_LEVEL": "2"}
    subprocess.run([*command, *(["--model", model] if model else [])], env=env, check=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--against", help="the src folder of the code to compare with")
    parser.add_argument("--model", help="a run dir whose finder says where digits are")
    parser.add_argument("--write", help="write the golden file here")
    parser.add_argument("--dump", help=argparse.SUPPRESS)  # one side of --against
    parser.add_argument("--files", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.dump:
        folder = Path(args.files)
        names = json.loads((folder / "names.json").read_text())
        files = {name: (folder / f"{i}.bin").read_bytes() for i, name in enumerate(names)}
        np.savez(args.dump, **answers(files, args.model))
        import relunet

        print(f"read {len(names)} files with {Path(relunet.__file__).parent}", flush=True)
        return
    sys.path.insert(0, str(SOURCE))  # this checkout's relunet, whatever is installed
    data_dir = os.environ.get("RELUNET_DATA_DIR")
    if not data_dir:
        raise SystemExit("reading_answers.py: error: RELUNET_DATA_DIR must name the MNIST files")
    with tempfile.TemporaryDirectory(prefix="relunet-reading-answers-") as tmp:
        tmp = Path(tmp)
        files = reading_files(data_dir, tmp / "sets")
        names = list(files)
        if args.write:
            found = answers(files, args.model)
            kept = golden(names, found)
            lines = ",\n".join(f"{json.dumps(k)}: {json.dumps(v)}" for k, v in kept.items())
            Path(args.write).write_text("{\n" + lines + "\n}\n")  # a file a line
            print(f"wrote the answers for {len(names)} files to {args.write}")
            return
        folder = tmp / "files"
        folder.mkdir()
        (folder / "names.json").write_text(json.dumps(names))
        for i, data in enumerate(files.values()):
            (folder / f"{i}.bin").write_bytes(data)
        _read_with(Path(args.against), folder, args.model, tmp / "old.npz")
        _read_with(SOURCE, folder, args.model, tmp / "new.npz")
        old, new = dict(np.load(tmp / "old.npz")), dict(np.load(tmp / "new.npz"))
    changed = differences(old, new, names)
    finder = f"the finder of {args.model}" if args.model else "no model"
    print(f"{len(names)} files, {finder}: {len(changed)} with different answers")
    for name, keys in list(changed.items())[:20]:
        print(f"  {name}: {', '.join(keys)}")
    sys.exit(1 if changed else 0)


if __name__ == "__main__":
    main()
