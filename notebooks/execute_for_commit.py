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
import contextlib
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
    its code hash; the seconds it took. Failed (exit 1, one line) when a cell raises or
    its outputs show a problem, Refused (exit 2) when `path` is not a notebook."""
    from nbclient import NotebookClient
    from nbclient.exceptions import CellExecutionError

    notebook = read(path)
    with tempfile.TemporaryDirectory(prefix="relunet-notebook-") as scratch:
        client = NotebookClient(
            notebook,
            timeout=TIMEOUT,
            kernel_name="python3",
            record_timing=False,
            resources={"metadata": {"path": scratch}},
        )
        start = time.monotonic()
        try:
            with kernel_stderr_dropped():  # the kernel's own log (its transport, say)
                client.execute(env=dict(os.environ))
        except CellExecutionError as error:
            raise Failed(f"{path.name}: not written: {cell_error(notebook, error)}") from None
        seconds = time.monotonic() - start
    found = problems(notebook)
    if found:
        raise Failed(f"{path.name}: not written, its outputs show problems: {'; '.join(found)}")
    notebook.metadata["relunet"] = {
        "code_sha256": code_sha256(notebook),
        "executed_by": "python notebooks/execute_for_commit.py",
        "seconds": round(seconds),
    }
    nbformat.write(notebook, path)
    return seconds


class Refused(Exception):
    """Not a notebook: exit 2."""


class Failed(Exception):
    """A notebook that raised, or whose outputs show a problem: exit 1."""


def read(path: Path) -> nbformat.NotebookNode:
    """The notebook at `path`, or Refused saying why it is not one."""
    if not path.exists():
        raise Refused(f"{path} does not exist.")
    if path.is_dir():
        raise Refused(f"{path} is a folder, not a notebook.")
    try:
        return nbformat.read(path, as_version=4)
    except Exception as error:  # nbformat raises JSON, validation and reader errors
        reason = " ".join(str(error).split())[:160] or type(error).__name__
        raise Refused(f"{path} is not a Jupyter notebook ({reason}).") from None


def cell_error(notebook: nbformat.NotebookNode, error: Exception) -> str:
    """Which cell raised what, from the error output the cell recorded."""
    for i, cell in enumerate(notebook.cells):
        for output in cell.get("outputs", []):
            if output.output_type == "error":
                return f"cell {i} raised {output.ename}: {output.evalue}"
    return " ".join(str(error).split())[-200:]


@contextlib.contextmanager
def kernel_stderr_dropped():
    """File descriptor 2 to nowhere while the kernel runs: what it logs is not the
    notebook's output (a cell's stderr reaches the notebook, and `problems` reads it)."""
    sys.stderr.flush()
    saved = os.dup(2)
    with open(os.devnull, "wb") as nowhere:
        os.dup2(nowhere.fileno(), 2)
        try:
            yield
        finally:
            os.dup2(saved, 2)
            os.close(saved)


class _Parser(argparse.ArgumentParser):
    def error(self, message: str):
        self.exit(2, f"{self.prog}: error: {message}\n")


def main(argv: list[str] | None = None) -> int:
    parser = _Parser(prog="execute_for_commit.py", description=__doc__.split("\n\n")[0])
    parser.add_argument("notebooks", nargs="*", type=Path, help="default: every notebook")
    args = parser.parse_args(argv)
    try:
        for path in args.notebooks or sorted(NOTEBOOKS.glob("*.ipynb")):
            read(path)  # every one checked before the first runs for minutes
        for path in args.notebooks or sorted(NOTEBOOKS.glob("*.ipynb")):
            print(f"{path.name}: executing", flush=True)
            print(f"{path.name}: written, {execute(path):.0f} s", flush=True)
    except Refused as error:
        print(f"{parser.prog}: error: {error}", file=sys.stderr)
        return 2
    except Failed as error:
        print(f"{parser.prog}: {error}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
