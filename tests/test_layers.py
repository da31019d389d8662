"""The package's rooms and floors, as docs/layout.md draws them.

Rooms: each package under src/relunet/ holds one domain, and imports only from the rooms
its row of ROOMS names (at its top or inside a function); each rule is shown failing on
an import planted across it. Floors: the modules listed in NO_TENSORFLOW import no
TensorFlow (nor anything that does) when they are imported, so the command line answers
`--help` and bad flags at once. And no modules import one another in a circle, however
far round (the circle finder is shown failing on one hidden in functions).

Read from the source (every import statement, and importlib.import_module of a literal
name), so a new import that crosses a room's wall, or closes a circle, fails here by name.
"""

import ast
import re
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
PACKAGE = ROOT / "src" / "relunet"

# What each room may import of relunet besides itself: one table, which docs/layout.md
# shows too (test_the_layout_page_shows_this_table). "preflight" is the command line's
# edge checks (relunet/preflight.py), which the library functions of the commands run
# too; "the command line" is cli.py, commands.py and the package's front, relunet/.
ROOMS = {
    "base": (),
    "config": ("base",),
    "imaging": ("base",),
    "reading": ("base", "imaging"),
    "data": ("base", "config", "imaging"),
    "training": ("base", "config", "imaging", "data", "preflight"),
    "inference": ("base", "config", "imaging", "reading", "data", "training", "preflight"),
    "experiments": ("base", "config", "data", "training", "inference", "preflight"),
    "serve": ("base", "config", "reading", "inference", "preflight"),
    "preflight": ("base", "config", "data", "training", "experiments", "inference", "serve"),
    "the command line": (
        "base",
        "config",
        "imaging",
        "reading",
        "data",
        "training",
        "inference",
        "experiments",
        "serve",
        "preflight",
    ),
}
TOP_LEVEL = {"": "the command line", "cli": "the command line", "commands": "the command line"}

# Modules that import no TensorFlow (nor keras, tfds, keras-tuner) when imported; each
# imports only modules of this list at its top. Every package's front is one of them.
NO_TENSORFLOW = """
    base.errors base.mnist base.signatures base.files base.values base.paths base.table
    base.quiet base._compat base.fronts
    config.fields config.train config.tune config.compare config.using config.series
    data.idx data.pypi_copy data.sources
    training.rundir training.calibrate training.distribute.cluster
    experiments.trials
    inference.npy_inputs inference.image_folders inference.trust
    serve.listen serve.decode serve.heads serve.server
    preflight commands cli
""".split()
HEAVY = {"tensorflow", "keras", "tensorflow_datasets", "keras_tuner"}


def _module_name(path: Path) -> str:
    parts = path.relative_to(PACKAGE).with_suffix("").parts
    parts = parts[:-1] if parts[-1] == "__init__" else parts
    return ".".join(parts)


def room_of(module: str) -> str:
    return TOP_LEVEL.get(module) or module.split(".")[0]


def _imported(node: ast.AST) -> set[str]:
    if (  # importlib.import_module("relunet.training.model") is an import too
        isinstance(node, ast.Call)
        and ast.unparse(node.func).endswith("import_module")
        and node.args
        and isinstance(node.args[0], ast.Constant)
    ):
        return {node.args[0].value}
    if isinstance(node, ast.Import):
        return {alias.name for alias in node.names}
    if isinstance(node, ast.ImportFrom) and node.module:
        # from relunet.data import idx: the module, and each name that may be a submodule
        return {node.module, *(f"{node.module}.{alias.name}" for alias in node.names)}
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
for _path in sorted(PACKAGE.rglob("*.py")):
    _tree = ast.parse(_path.read_text())
    MODULES[_module_name(_path)] = _top_level_imports(_tree)
    EVER[_module_name(_path)] = _all_imports(_tree)


def _relunet_imports(module: str, imports: dict[str, set[str]] = MODULES) -> set[str]:
    """The relunet modules `module` imports, with the package fronts each one's import
    runs first (importing relunet.serve.listen runs relunet/serve/__init__.py)."""
    found = set()
    for name in imports[module]:
        parts = name.split(".")
        if parts[0] != "relunet":
            continue
        for end in range(2, len(parts) + 1):
            inner = ".".join(parts[1:end])
            # A package's front has run before any module inside it runs.
            if inner in MODULES and not module.startswith(f"{inner}."):
                found.add(inner)
    return found - {module}


def _closure(module: str) -> set[str]:
    seen, pending = set(), [module]
    while pending:
        for name in _relunet_imports(pending.pop()) - seen:
            seen.add(name)
            pending.append(name)
    return seen


def crossed(module: str, imports: dict[str, set[str]] = EVER) -> set[str]:
    """The rooms `module` imports from that its room may not."""
    room = room_of(module)
    rooms = {room_of(name) for name in _relunet_imports(module, imports)}
    return rooms - {room, *ROOMS[room]}


def test_every_module_is_in_a_room():
    assert {room_of(m) for m in MODULES} <= set(ROOMS), sorted(MODULES)


@pytest.mark.parametrize("module", sorted(MODULES), ids=lambda m: m or "relunet")
def test_a_module_imports_only_from_the_rooms_its_room_may(module):
    """At its top or inside a function: an import is an import."""
    assert not crossed(module), f"{module or 'relunet'} imports from {sorted(crossed(module))}"


def _planted_pairs() -> list[tuple[str, str]]:
    present = {room_of(m) for m in MODULES}
    return [
        (room, other)
        for room in ROOMS
        for other in ROOMS
        if room in present and other in present and other != room and other not in ROOMS[room]
    ]


@pytest.mark.parametrize("room, other", _planted_pairs())
def test_each_rule_fails_on_an_import_planted_across_it(room, other):
    """A module of `room` given one import, inside a function, of a module of `other`,
    which its room may not import: the room test names it."""
    module = next(m for m in sorted(MODULES) if room_of(m) == room)
    target = next(m for m in sorted(MODULES) if room_of(m) == other and m)
    planted = ast.parse(f"def f():\n    from relunet.{target} import anything\n")
    assert other not in crossed(module)
    assert other in crossed(module, {**EVER, module: EVER[module] | _all_imports(planted)})


def _rules(text: str) -> tuple[str, ...]:
    """The rooms a "May import:" sentence names ("no other room": none)."""
    listed = re.split(r"[;.(]", text, maxsplit=1)[0]
    return () if listed.startswith("no other") else tuple(r.strip() for r in listed.split(","))


@pytest.mark.parametrize("room", [r for r in ROOMS if (PACKAGE / r).is_dir()])
def test_each_room_says_in_two_lines_what_it_holds_and_what_it_may_import(room):
    doc = ast.get_docstring(ast.parse((PACKAGE / room / "__init__.py").read_text()))
    assert doc and len(doc.splitlines()) == 2, f"{room}/__init__.py: two lines, please"
    may = doc.splitlines()[1]
    assert may.startswith("May import: "), may
    assert set(_rules(may.removeprefix("May import: "))) == set(ROOMS[room]), may


def test_the_layout_page_shows_this_table():
    """docs/layout.md's table of rooms and what each may import is ROOMS, row for row."""
    page = (ROOT / "docs" / "layout.md").read_text()
    rows = re.findall(r"^\| `?([\w ]+?)`? \| ([^|]*) \|$", page, re.M)
    shown = {room: _rules(rules) for room, rules in rows if room in ROOMS}
    assert shown == {room: tuple(rules) for room, rules in ROOMS.items()}


def test_the_modules_without_tensorflow_import_none_when_imported():
    for module in NO_TENSORFLOW:
        heavy = {name.split(".")[0] for name in MODULES[module]} & HEAVY
        assert not heavy, f"{module} imports {sorted(heavy)}"
        fronts = {m for m in MODULES if not m or m in {n.rsplit(".", 1)[0] for n in MODULES}}
        climbed = _relunet_imports(module) - set(NO_TENSORFLOW) - fronts
        assert not climbed, f"{module} imports {sorted(climbed)}, which import TensorFlow"


def test_every_package_front_imports_nothing_heavy():
    fronts = [m for m in MODULES if (PACKAGE / m.replace(".", "/") / "__init__.py").is_file()]
    for front in fronts:
        assert not {name.split(".")[0] for name in MODULES[front]} & HEAVY, front
        assert _relunet_imports(front) <= set(NO_TENSORFLOW) | set(fronts), front


# Names that functions of several rooms share, each for one job (a command's steps are
# named after the command in each module that takes one).
SAME_JOB = {
    **dict.fromkeys(
        ("train", "tune", "compare", "export", "predict", "evaluate", "serve"),
        "the command: its check (preflight), its command-line step (commands), its library "
        "function (its room)",
    ),
    "run": "a command's work once its check has passed, in each command's module",
    "__getattr__": "a package front's names, loaded on first use",
    "__dir__": "a package front's names, listed",
}


def functions(tree: ast.Module) -> set[str]:
    """The names of a module's functions, at its top and inside its functions (methods
    are their classes' business: build, call, on_epoch_begin answer to Keras)."""
    found, pending = set(), list(tree.body)
    while pending:
        node = pending.pop()
        if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef):
            found.add(node.name)
            pending.extend(node.body)
        elif not isinstance(node, ast.ClassDef):
            pending.extend(n for n in ast.iter_child_nodes(node) if isinstance(n, ast.stmt))
    return found


def test_no_function_is_named_the_same_in_two_rooms_for_different_jobs():
    """A reader who meets `answer` or `page` in one room should not find another one,
    doing something else, in the next."""
    rooms_of: dict[str, set[str]] = {}
    for path in PACKAGE.rglob("*.py"):
        room = room_of(_module_name(path))
        for name in functions(ast.parse(path.read_text())):
            rooms_of.setdefault(name, set()).add(room)
    shared = {name: sorted(rooms) for name, rooms in rooms_of.items() if len(rooms) > 1}
    assert not {name: rooms for name, rooms in shared.items() if name not in SAME_JOB}


def test_a_function_named_twice_for_two_jobs_is_found():
    page = ast.parse("def read_page():\n    def page():\n        pass\n")
    assert functions(page) == {"read_page", "page"}


LONG_MODULE = 320  # lines; a module longer says why in its docstring ("About N lines ...")
LONG_FUNCTION = 60  # lines


@pytest.mark.parametrize("path", sorted(PACKAGE.rglob("*.py")), ids=lambda p: _module_name(p))
def test_a_module_is_read_in_one_sitting_and_a_function_on_one_screen(path):
    text = path.read_text()
    lines = len(text.splitlines())
    doc = ast.get_docstring(ast.parse(text)) or ""
    assert lines <= LONG_MODULE or re.search(r"About \d+ lines", doc), (
        f"{path.name}: {lines} lines, and its docstring does not say why"
    )
    long = [
        f"{node.name} ({node.end_lineno - node.lineno + 1} lines)"
        for node in ast.walk(ast.parse(text))
        if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef)
        and node.end_lineno - node.lineno + 1 > LONG_FUNCTION
    ]
    assert not long, f"{path.name}: {long}"


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
    """Two modules that import each other only inside functions, as export and predict
    did before 0.3: the top-level reading misses it, the full one does not."""
    export = ast.parse("def run():\n    from relunet.inference.predict import read_files\n")
    predict = ast.parse("def read_files():\n    from relunet.inference.export import run\n")
    swapped = {"inference.export": export, "inference.predict": predict}
    everywhere = {**EVER, **{m: _all_imports(t) for m, t in swapped.items()}}
    at_the_top = {**EVER, **{m: _top_level_imports(t) for m, t in swapped.items()}}
    assert {"inference.export", "inference.predict"} in [set(c) for c in import_circles(everywhere)]
    assert not import_circles(at_the_top)


def test_the_model_does_not_reach_into_run_dirs_backups_or_paths():
    reached = _closure("training.model")
    assert not reached & {
        "training.rundir",
        "training.backup",
        "base.paths",
        "preflight",
        "training.callbacks",
    }
    assert "training.model" not in _closure("data.pipelines")
    assert _relunet_imports("base.files") <= {"base", "base.errors"}  # the leaf for files


@pytest.mark.slow  # a fresh TensorFlow: the full suite's, and each Python's
@pytest.mark.pythons
def test_importing_the_model_loads_only_what_it_needs():
    code = (
        "import sys, relunet.training.model; "
        "print(sorted(m for m in sys.modules if 'relunet' in m))"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    loaded = set(eval(result.stdout))  # a printed list of module names
    assert "relunet.training.model" in loaded
    assert not loaded & {
        "relunet.training.rundir",
        "relunet.training.backup",
        "relunet.base.paths",
        "relunet.base.files",
    }
