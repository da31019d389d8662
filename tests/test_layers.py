"""The package's floors, as docs/layout.md lists them: a module imports only from its own
floor or the floors below, at its top or inside a function; no modules import one another
in a circle, however far round; the floors below the concepts never import TensorFlow
when they are imported; and the concept modules stay free of the run directory's
bookkeeping.

Read from the source (every import statement, and importlib.import_module of a literal
name), so a new import that climbs the wrong way, or closes a circle, fails here by name.
"""

import ast
import subprocess
import sys
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[1] / "src" / "relunet"

# Lowest first. Modules on the first three floors import no TensorFlow.
FLOORS = {
    "leaves": "errors mnist signatures table files values paths listen quiet _compat",
    "plain values and files": "series config calibrate idx inputs trust distribute.cluster rundir "
    "pypi_copy sources trials preflight",
    "the concepts": "model data prepare builder headers images ink segment nondigits augment "
    "backup callbacks classifier answers runtime export inference report plots "
    "distribute.devices",
    "the commands' work": "train evaluation tune compare serve serve.batching serve.decode "
    "serve.models serve.lifecycle serve.watch serve.rest",
    "the command line": "commands cli",
}
NO_TENSORFLOW = ("leaves", "plain values and files")
FLOOR_OF = {m: i for i, (_, modules) in enumerate(FLOORS.items()) for m in modules.split()}


def _module_name(path: Path) -> str:
    parts = path.relative_to(PACKAGE).with_suffix("").parts
    parts = parts[:-1] if parts[-1] == "__init__" else parts
    return ".".join(parts)


def _imported(node: ast.AST) -> set[str]:
    if (  # importlib.import_module("relunet.model") is an import too
        isinstance(node, ast.Call)
        and ast.unparse(node.func).endswith("import_module")
        and node.args
        and isinstance(node.args[0], ast.Constant)
    ):
        return {node.args[0].value}
    if isinstance(node, ast.Import):
        return {alias.name for alias in node.names}
    if isinstance(node, ast.ImportFrom) and node.module:
        if node.module == "relunet":  # from relunet import data, preflight
            return {node.module, *(f"relunet.{alias.name}" for alias in node.names)}
        return {node.module}
    return set()


def _top_level_imports(tree: ast.Module) -> set[str]:
    """The modules a file imports when it is imported (not inside functions, not under
    `if TYPE_CHECKING`)."""
    return {name for node in tree.body for name in _imported(node)}


def _all_imports(tree: ast.Module) -> set[str]:
    """Every module a file may import: at its top and inside its functions (not under
    `if TYPE_CHECKING`, which never runs)."""
    skipped = {
        id(inner)
        for node in ast.walk(tree)
        if isinstance(node, ast.If) and "TYPE_CHECKING" in ast.unparse(node.test)
        for inner in ast.walk(node)
    }
    return {name for node in ast.walk(tree) if id(node) not in skipped for name in _imported(node)}


MODULES: dict[str, set[str]] = {}  # what each module imports at its top
EVER: dict[str, set[str]] = {}  # and inside its functions too
for _path in PACKAGE.rglob("*.py"):
    _name = _module_name(_path)
    if _name in ("", "distribute"):  # the package's and the subpackage's lazy fronts
        continue
    _name = "config" if _name.startswith("config") else _name  # one floor, several files
    _tree = ast.parse(_path.read_text())
    MODULES[_name] = MODULES.get(_name, set()) | _top_level_imports(_tree)
    EVER[_name] = EVER.get(_name, set()) | _all_imports(_tree)


def _relunet_imports(module: str, imports: dict[str, set[str]] = MODULES) -> set[str]:
    found = set()
    for name in imports[module]:
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
    """At its top or inside a function: an import that climbs is a floor crossed."""
    above = {
        name
        for name in _relunet_imports(module, EVER)
        if FLOOR_OF.get(name, FLOOR_OF.get(name.split(".")[0], 0)) > FLOOR_OF[module]
    }
    assert not above, f"{module} imports {sorted(above)} from a higher floor"
    if list(FLOORS)[FLOOR_OF[module]] in NO_TENSORFLOW:
        heavy = {"tensorflow", "keras", "tensorflow_datasets", "keras_tuner"}
        assert not {n.split(".")[0] for n in MODULES[module]} & heavy, module


def import_circles(imports: dict[str, set[str]]) -> list[list[str]]:
    """Every circle of imports between relunet's modules, each as the path that closes it
    (["a", "b", "a"]), found by a depth-first walk."""
    graph = {m: {n for n in _relunet_imports(m, imports) if n in imports} for m in imports}
    circles, done = [], set()

    def walk(module: str, path: list[str]) -> None:
        for name in sorted(graph[module]):
            if name in path:
                circle = [*path[path.index(name) :], name]
                if sorted(circle[:-1]) not in [sorted(c[:-1]) for c in circles]:
                    circles.append(circle)
            elif name not in done:
                walk(name, [*path, name])
        done.add(module)

    for module in sorted(graph):
        if module not in done:
            walk(module, [module])
    return circles


def test_no_module_imports_itself_through_others_even_inside_a_function():
    circles = import_circles(EVER)
    assert not circles, "import circles: " + "; ".join(" -> ".join(c) for c in circles)


def test_a_circle_hidden_inside_functions_is_found():
    """Two modules that import each other only inside functions, as export and inference
    did before 0.3: the top-level reading misses it, the full one does not."""
    export = ast.parse("def run():\n    from relunet.inference import load_classifier\n")
    inference = ast.parse("def load_classifier():\n    from relunet.export import SIGNATURE\n")
    swapped = {"export": export, "inference": inference}
    everywhere = {**EVER, **{m: _all_imports(t) for m, t in swapped.items()}}
    at_the_top = {**EVER, **{m: _top_level_imports(t) for m, t in swapped.items()}}
    assert {"export", "inference"} in [set(c) for c in import_circles(everywhere)]
    assert not import_circles(at_the_top)


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
