"""Execute notebooks as committed (full MNIST) and record which code made their outputs.

    python notebooks/execute_for_commit.py                  # every notebook
    python notebooks/execute_for_commit.py notebooks/05_lab10_series.ipynb

Each notebook's parameter cell holds the full-MNIST values, so this runs it exactly as
it stands, top to bottom in a fresh kernel, in a scratch folder (its runs/, tuning/ and
saved_models/ land there, not in the checkout), then writes it back with its outputs and
`metadata.relunet.code_sha256`: the hash of its code cells. tests/test_notebooks.py
fails when a code cell no longer matches that hash (run this again and commit the
result), and executes a copy of each notebook on the small slice that each parameter's
comment gives (`# small slice: ...`), in a cell it adds after the parameter cell.

Run `ruff format notebooks` first (formatting changes the code, so the hash), and on a
quiet machine: the outputs show times. Refuses to write a notebook whose run raised or
wrote to stderr.
"""

from __future__ import annotations

import argparse
import hashlib
import os
import sys
import tempfile
import time
from pathlib import Path

import nbformat

NOTEBOOKS = Path(__file__).resolve().parent
TIMEOUT = 3600  # seconds a cell may take: a full search is minutes on 2 cores


def code_sha256(notebook: nbformat.NotebookNode) -> str:
    """The hash of a notebook's code cells, in order (their sources only)."""
    digest = hashlib.sha256()
    for cell in notebook.cells:
        if cell.cell_type == "code":
            digest.update(cell.source.encode())
            digest.update(b"\0")
    return digest.hexdigest()


def problems(notebook: nbformat.NotebookNode) -> list[str]:
    """What a reader should not see in the outputs: errors and anything on stderr."""
    found = []
    for i, cell in enumerate(notebook.cells):
        for output in cell.get("outputs", []):
            if output.output_type == "error":
                found.append(f"cell {i}: {output.ename}: {output.evalue}")
            elif output.output_type == "stream" and output.name == "stderr":
                found.append(f"cell {i} wrote to stderr: {output.text[:300]}")
    return found


def execute(path: Path) -> float:
    """Run the notebook at `path` as it stands and write it back with its outputs and
    its code hash; the seconds it took."""
    from nbclient import NotebookClient

    notebook = nbformat.read(path, as_version=4)
    with tempfile.TemporaryDirectory(prefix="relunet-notebook-") as scratch:
        client = NotebookClient(
            notebook,
            timeout=TIMEOUT,
            kernel_name="python3",
            record_timing=False,
            resources={"metadata": {"path": scratch}},
        )
        start = time.monotonic()
        client.execute(env=dict(os.environ))
        seconds = time.monotonic() - start
    found = problems(notebook)
    if found:
        raise SystemExit(
            f"{path.name}: not written, its outputs show problems:\n" + "\n".join(found)
        )
    notebook.metadata["relunet"] = {
        "code_sha256": code_sha256(notebook),
        "executed_by": "python notebooks/execute_for_commit.py",
        "seconds": round(seconds),
    }
    nbformat.write(notebook, path)
    return seconds


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("notebooks", nargs="*", type=Path, help="default: every notebook")
    args = parser.parse_args(argv)
    for path in args.notebooks or sorted(NOTEBOOKS.glob("*.ipynb")):
        print(f"{path.name}: executing", flush=True)
        print(f"{path.name}: written, {execute(path):.0f} s", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
