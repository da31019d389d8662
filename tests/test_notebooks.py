"""The notebooks: committed with the outputs of their full-MNIST run, which must come from
the code they show, and each executed here on a small slice (a copy; the committed file
is never rewritten).

A notebook's parameter cell holds the full-MNIST values; a line's comment
`# small slice: VALUE` gives the value this suite runs it with, set in a cell added
right after the parameter cell. `notebooks/execute_for_commit.py` runs a notebook as it
stands and records the hash of its code cells in its metadata.
"""

import ast
import importlib.util
import os
import re
import subprocess
import sys
from pathlib import Path

import nbformat
import pytest
from nbclient import NotebookClient

FOLDER = Path(__file__).resolve().parents[1] / "notebooks"
NOTEBOOKS = sorted(FOLDER.glob("*.ipynb"))
SMALL = re.compile(r"^(\w+)\s*=.*#\s*small slice:\s*(.+?)\s*$")

_SCRIPT = FOLDER / "execute_for_commit.py"  # the hash and the checks it commits with
_spec = importlib.util.spec_from_file_location("execute_for_commit", _SCRIPT)
execute_for_commit = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(execute_for_commit)


def parameter_cell(notebook: nbformat.NotebookNode) -> int:
    found = [i for i, c in enumerate(notebook.cells) if "parameters" in c.metadata.get("tags", [])]
    assert len(found) == 1, "a notebook has exactly one cell tagged 'parameters'"
    return found[0]


def small_slice(parameters: str) -> str:
    """The parameter cell's `# small slice:` values, as assignments."""
    lines = []
    for name, value in (m.groups() for m in map(SMALL.match, parameters.splitlines()) if m):
        ast.literal_eval(value)  # a plain value, nothing to run
        lines.append(f"{name} = {value}")
    assert lines, "the parameter cell gives no '# small slice:' value"
    return "\n".join(["# the test suite's small slice", *lines])


@pytest.mark.slow
@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.stem)
def test_notebook_executes_on_its_small_slice_without_error_or_noise(path, tmp_path, source):
    committed = path.read_bytes()
    notebook = nbformat.read(path, as_version=4)
    at = parameter_cell(notebook)
    small = nbformat.v4.new_code_cell(small_slice(notebook.cells[at].source))
    notebook.cells.insert(at + 1, small)
    # Runs in a scratch folder, so its runs/, tuning/ and saved_models/ land there.
    client = NotebookClient(
        notebook,
        timeout=600,
        kernel_name="python3",
        resources={"metadata": {"path": str(tmp_path)}},
    )
    client.execute(env=dict(os.environ))
    nbformat.write(notebook, tmp_path / path.name)  # to look at when this fails
    # What the reader sees: no errors, no TensorFlow start-up lines, no warnings.
    assert not execute_for_commit.problems(notebook)
    assert path.read_bytes() == committed


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.stem)
def test_committed_outputs_come_from_the_code_cells_shown(path):
    notebook = nbformat.read(path, as_version=4)
    small_slice(notebook.cells[parameter_cell(notebook)].source)  # one to run it with here
    recorded = notebook.metadata.get("relunet", {}).get("code_sha256")
    assert recorded == execute_for_commit.code_sha256(notebook), (
        f"{path.name}: a code cell differs from the code its outputs came from; run "
        f"`python notebooks/execute_for_commit.py notebooks/{path.name}` and commit it"
    )
    code = [c for c in notebook.cells if c.cell_type == "code"]
    # Executed top to bottom in one kernel, every cell, with nothing wrong shown.
    assert [c.execution_count for c in code] == list(range(1, len(code) + 1))
    assert not execute_for_commit.problems(notebook)
    for cell in code:
        if "plt.show()" in cell.source or "display(Image(" in cell.source:
            assert any("image/png" in o.get("data", {}) for o in cell.outputs), cell.source


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.stem)
def test_editing_any_code_cell_makes_the_outputs_stale(path):
    """The freshness check above fails for an edit of any one code cell, even a space."""
    notebook = nbformat.read(path, as_version=4)
    recorded = execute_for_commit.code_sha256(notebook)
    for cell in (c for c in notebook.cells if c.cell_type == "code"):
        kept = cell.source
        cell.source = kept + " "
        assert execute_for_commit.code_sha256(notebook) != recorded
        cell.source = kept
    markdown = next(c for c in notebook.cells if c.cell_type == "markdown")
    markdown.source += " (prose may change without a rerun)"
    assert execute_for_commit.code_sha256(notebook) == recorded


def _execute_for_commit(*args: str, cwd: Path) -> tuple[int, list[str]]:
    done = subprocess.run(
        [sys.executable, str(_SCRIPT), *args], cwd=cwd, capture_output=True, text=True, timeout=300
    )
    return done.returncode, [line for line in done.stderr.splitlines() if line.strip()]


def test_execute_for_commit_refuses_what_is_not_a_notebook_in_one_line(tmp_path):
    (tmp_path / "text.ipynb").write_text("not a notebook")
    (tmp_path / "empty.ipynb").write_bytes(b"")
    (tmp_path / "folder.ipynb").mkdir()
    for name, says in (
        ("missing.ipynb", "missing.ipynb does not exist"),
        ("text.ipynb", "text.ipynb is not a Jupyter notebook"),
        ("empty.ipynb", "empty.ipynb is not a Jupyter notebook"),
        ("folder.ipynb", "folder.ipynb is a folder, not a notebook"),
    ):
        code, lines = _execute_for_commit(name, cwd=tmp_path)
        assert code == 2 and len(lines) == 1 and says in lines[0], lines
    assert sorted(p.name for p in tmp_path.iterdir()) == [
        "empty.ipynb",
        "folder.ipynb",
        "text.ipynb",
    ]


@pytest.mark.slow  # a kernel
def test_execute_for_commit_names_the_cell_that_raised_and_writes_nothing(tmp_path):
    notebook = nbformat.v4.new_notebook()
    notebook.cells = [nbformat.v4.new_code_cell("x = 1"), nbformat.v4.new_code_cell("1 / 0")]
    nbformat.write(notebook, tmp_path / "raises.ipynb")
    before = (tmp_path / "raises.ipynb").read_bytes()
    code, lines = _execute_for_commit("raises.ipynb", cwd=tmp_path)
    assert code == 1 and lines == [
        "execute_for_commit.py: raises.ipynb: not written: cell 1 raised ZeroDivisionError: "
        "division by zero"
    ]
    assert (tmp_path / "raises.ipynb").read_bytes() == before
