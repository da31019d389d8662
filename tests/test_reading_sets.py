"""The reader's answers on the project's reading sets (benchmarks/reading_answers.py:
1,205 photos of numbers, single digits, letters, symbols and doodles, and bench_serve.py's
two photo sets), read without a model, against tests/reading_sets_golden.json: every
count, box, mark and the digits' very pixels, so a speed-up of the photo path that
changes a single answer fails here and names the file.

When an answer is meant to change, `python benchmarks/reading_answers.py --write
tests/reading_sets_golden.json` writes the golden file again (say why in the commit)."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest

pytestmark = pytest.mark.slow  # 1,205 files drawn and read: about a minute

BENCHMARKS = Path(__file__).resolve().parents[1] / "benchmarks"
GOLDEN = Path(__file__).with_name("reading_sets_golden.json")


def test_the_reading_sets_read_as_the_golden_file_says(mnist_dir, tmp_path):
    sys.path.insert(0, str(BENCHMARKS))
    from reading_answers import answers, golden, reading_files  # golden: in FIELDS order

    files = reading_files(str(mnist_dir), tmp_path)
    found = golden(list(files), answers(files))
    kept = json.loads(GOLDEN.read_text())
    assert set(found) == set(kept), "python benchmarks/reading_answers.py --write ..."
    changed = {name: (found[name], kept[name]) for name in kept if found[name] != kept[name]}
    assert not changed, (
        f"{len(changed)} answers changed (found, golden): {list(changed.items())[:5]}"
    )
