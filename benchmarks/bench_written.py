"""The issue's hard cases, each drawn many ways and read by a trained run through
`relunet predict`: a 7 touching a 1, a 10 whose 1 leans over its 0, a number across a
ruled line, and a question mark, A, R and k that should be "not a digit".

    python benchmarks/bench_written.py --model runs/robust [--json]

Each case is drawn by the tests' pen (tests/drawings.py) over a grid of what varies
when people write it: how far the two digits overlap (the 7 and the 1 always share ink
here, one component), how far the 1 leans, where the ruled line runs, the pen's width
and the writing's height. A case's figure is the share of its drawings read exactly as
written; no drawing here is used to train or fit anything.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from bench_real_digits import run
from drawings import png

NONE = "not a digit"
PENS = (6, 9, 13)
HEIGHTS = (80, 120, 200)


def cases() -> dict[str, list[tuple[bytes, str]]]:
    """case: [(PNG bytes, what it reads)]."""
    sizes = [(h, p) for h in HEIGHTS for p in PENS]
    out = {
        "7 touching 1": [
            (png("71", h, p, gap=gap), "71") for gap in (-0.06, -0.1, -0.14) for h, p in sizes
        ],
        "10, the 1 leaning over its 0": [
            (png("10", h, p, gap=0.1, lean=(lean, 0.0)), "10")
            for lean in (0.15, 0.2, 0.25)
            for h, p in sizes
        ],
        "2026 across a ruled line": [(png("2026", h, p, ruled=True), "2026") for h, p in sizes],
        "42 and 2026, apart": [(png(t, h, p), t) for t in ("42", "2026") for h, p in sizes],
    }
    for glyph in ("A", "R", "k", "?"):
        out[f"{glyph} (not a digit)"] = [(png(glyph, h, p), NONE) for h, p in sizes]
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", required=True, help="a run dir or an export")
    parser.add_argument("--json", action="store_true", help="print one JSON object")
    args = parser.parse_args()
    result = {}
    with tempfile.TemporaryDirectory(prefix="relunet-written-") as tmp:
        expected = {}
        for case, drawn in cases().items():
            for image, reads in drawn:
                name = Path(tmp) / f"{len(expected):03d}.png"
                name.write_bytes(image)
                expected[str(name)] = (case, reads)
        answers = json.loads(run("predict", "--model", args.model, "--json", *expected))
        for answer in answers:
            case, reads = expected[answer["input"]]
            said = NONE if answer["not_a_digit"] else answer["digits"]
            right, total = result.get(case, (0, 0))
            result[case] = (right + (said == reads), total + 1)
    if args.json:
        print(json.dumps({case: {"right": r, "of": n} for case, (r, n) in result.items()}))
    else:
        for case, (right, total) in result.items():
            print(f"{case:32s} {right:3d} of {total:3d}  {right / total:.0%}")


if __name__ == "__main__":
    main()
