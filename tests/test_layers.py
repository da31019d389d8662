"""The package's floors, as the README's layout lists them: a module imports only from
its own floor or the floors below, the floors below the concepts never import
TensorFlow, and the concept modules stay free of the run directory's bookkeeping.

Read from the source (each module's top-level imports, what runs at `import`), so a
new import that climbs the wrong way fails here by name."""

import ast
import subprocess
import sys
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[1] / "src" / "relunet"

# Lowest first. Modules on the first three floors import no TensorFlow.
FLOORS = {
    "leaves": "errors mnist table files values paths quiet _compat",
    "plain values and files": "series config idx inputs trust distribute.cluster rundir "
    "pypi_copy sources trials preflight",
    "the concepts": "model data images ink augment builder backup callbacks export inference "
    "report plots distribute.devices",
    "the commands' work": "train tune compare serve serve.batching serve.decode serve.models "
    "serve.rest",
    "the command line": "commands cli",
}
NO_TENSORFLOW = ("leaves", "plain values and files")
FLOOR_OF = {m: i for i, (_, modules) in enumerate(FLOORS.items()) for m in modules.split()}


def _module_name(path: Path) -> str:
    parts = path.relative_to(PACKAGE).with_suffix("").parts
    parts = parts[:-1] if parts[-1] == "__init__" else parts
    return ".".join(parts)


def _top_level_imports(path: Path) -> set[str]:
    """The modules a file imports when it is imported (not inside functions, not under
    `if TYPE_CHECKING`)."""
    names = set()
    for node in ast.parse(path.read_text()).body:
        if isinstance(node, ast.Import):
            names |= {alias.name for alias in node.names}
        elif isinstance(node, ast.ImportFrom) and node.module:
            names.add(node.module)
            if node.module == "relunet":  # from relunet import data, preflight
                names |= {f"relunet.{alias.name}" for alias in node.names}
    return names


MODULES: dict[str, set[str]] = {}
for _path in PACKAGE.rglob("*.py"):
    _name = _module_name(_path)
    if _name in ("", "distribute"):  # the package's and the subpackage's lazy fronts
        continue
    _name = "config" if _name.startswith("config") else _name  # one floor, three files
    MODULES[_name] = MODULES.get(_name, set()) | _top_level_imports(_path)


def _relunet_imports(module: str) -> set[str]:
    found = set()
    for name in MODULES[module]:
        if name.startswith("relunet."):
            inner = name.removeprefix("relunet.")
            found.add(inner if inner in FLOOR_OF else inner.split(".")[0])
    return found - {"__version__", module}


def _closure(module: str) -> set[str]:
    seen, pending = set(), [module]
    while pending:
        for name in _relunet_imports(pending.pop()) - seen:
            seen.add(name)
            if name in MODULES:
                pending.append(name)
    return seen


def test_every_module_has_a_floor():
    assert set(MODULES) == set(FLOOR_OF)


@pytest.mark.parametrize("module", sorted(FLOOR_OF))
def test_a_module_imports_only_its_own_floor_or_below(module):
    above = {
        name
        for name in _relunet_imports(module)
        if FLOOR_OF.get(name, FLOOR_OF.get(name.split(".")[0], 0)) > FLOOR_OF[module]
    }
    assert not above, f"{module} imports {sorted(above)} from a higher floor"
    if list(FLOORS)[FLOOR_OF[module]] in NO_TENSORFLOW:
        heavy = {"tensorflow", "keras", "tensorflow_datasets", "keras_tuner"}
        assert not {n.split(".")[0] for n in MODULES[module]} & heavy, module


def test_the_model_does_not_reach_into_run_dirs_backups_or_paths():
    assert not _closure("model") & {"rundir", "backup", "paths", "preflight", "callbacks"}
    assert "model" not in _closure("data")
    assert _relunet_imports("files") <= {"errors"}  # the leaf for files


def test_importing_the_model_loads_only_what_it_needs():
    code = "import sys, relunet.model; print(sorted(m for m in sys.modules if 'relunet' in m))"
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    loaded = set(eval(result.stdout))  # a printed list of module names
    assert "relunet.model" in loaded
    assert not loaded & {"relunet.rundir", "relunet.backup", "relunet.paths", "relunet.files"}
