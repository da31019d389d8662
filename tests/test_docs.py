"""The front door stays true: the README's test command is the one CI runs, every
link and picture in the Markdown points at a file that exists, every `relunet` command
shown parses with today's flags and every script shown exists, and no placeholder is
left for output that was never pasted in."""

import importlib
import re
import shlex
from pathlib import Path

import pytest

from relunet.cli import build_parser

ROOT = Path(__file__).resolve().parents[1]
PAGES = [
    ROOT / "README.md",
    ROOT / "benchmarks" / "README.md",
    *sorted((ROOT / "docs").glob("*.md")),
]
LINK = re.compile(r"\]\(([^)#\s]*)(?:#([^)\s]*))?\)")
PLACEHOLDER = re.compile(r"\{\{\w+\}\}")  # output still to paste in


def anchors(page: Path) -> set[str]:
    """GitHub's slugs of a Markdown page's headings."""
    headings = re.findall(r"^#+ (.+)$", page.read_text(), re.M)
    return {re.sub(r"[^\w\- ]", "", h.strip().lower()).replace(" ", "-") for h in headings}


def test_the_readme_test_command_is_the_one_ci_runs():
    readme = (ROOT / "README.md").read_text()
    blocks = re.findall(r"```bash\n(.*?)\n```", readme, re.S)
    command = next(b for b in blocks if "pytest" in b)
    ci = (ROOT / ".ci" / "run").read_text().strip().splitlines()
    assert ci[-1] == command


@pytest.mark.parametrize("page", PAGES, ids=lambda p: str(p.relative_to(ROOT)))
def test_every_local_link_and_picture_exists(page):
    text = page.read_text()
    links = [(t, a) for t, a in LINK.findall(text) if not re.match(r"[a-z]+:", t)]
    missing = [t for t, _ in links if not (page.parent / t).exists()]
    assert not missing, f"{page.name} links to missing files: {missing}"
    lost = [f"{t}#{a}" for t, a in links if a and a not in anchors(page.parent / (t or page.name))]
    assert not lost, f"{page.name} links to headings that do not exist: {lost}"
    assert not PLACEHOLDER.search(text), f"{page.name} holds an unfilled placeholder"


# A command as a page shows it: after "$ " in a transcript, or a line of a bash block.
PROMPT = re.compile(r"^\$ (.*)$", re.M)
BASH = re.compile(r"```bash\n(.*?)\n```", re.S)


def commands_shown(text: str) -> list[list[str]]:
    """The relunet and python commands a page shows, as words."""
    lines = PROMPT.findall(text) + [line for b in BASH.findall(text) for line in b.splitlines()]
    lines = [re.split(r" #| \d?>| &$", line)[0] for line in lines]  # no comments, redirections
    parts = (part.strip() for line in lines for part in re.split(r"&&|\|", line))
    return [shlex.split(part) for part in parts if part.startswith(("relunet ", "python "))]


@pytest.mark.parametrize("page", PAGES, ids=lambda p: str(p.relative_to(ROOT)))
def test_every_relunet_command_shown_parses_and_every_script_shown_exists(page):
    shown = commands_shown(page.read_text())
    for words in shown:
        if words[0] == "relunet":
            try:
                build_parser().parse_args(words[1:])
            except SystemExit as exit:  # argparse's way out: --help is 0, a bad flag 2
                assert exit.code == 0, f"{page.name}: {shlex.join(words)} does not parse"
        elif words[1].endswith(".py"):
            assert (ROOT / words[1]).is_file(), f"{page.name}: {words[1]} does not exist"
    if page == ROOT / "README.md":
        assert sum(w[0] == "relunet" for w in shown) >= 4


def _layout_tree() -> set[str]:
    """The paths docs/layout.md's module tree names under src/relunet/, folders with a
    trailing slash: each entry's first word, nested by its indentation."""
    page = (ROOT / "docs" / "layout.md").read_text()
    tree = page.split("## Modules", 1)[1].split("```text\n", 1)[1].split("```", 1)[0]
    named, stack = set(), []  # (indentation, folder) of the folders open above
    for line in tree.splitlines():
        indent, word = len(line) - len(line.lstrip()), line.split()[0]
        while stack and stack[-1][0] >= indent:
            stack.pop()
        path = "".join(folder for _, folder in stack) + word
        if stack or word == "src/relunet/":
            named.add(path)
        if word.endswith("/"):
            stack.append((indent, word))
    return {p.removeprefix("src/relunet/") for p in named if p != "src/relunet/"}


def test_the_layout_names_every_module_and_no_module_that_is_gone():
    package = ROOT / "src" / "relunet"
    modules = {
        str(p.relative_to(package)) for p in package.rglob("*.py") if p.name != "__init__.py"
    }
    folders = {f"{p.relative_to(package)}/" for p in package.rglob("*") if p.is_dir()}
    folders -= {f for f in folders if "__pycache__" in f}
    named = _layout_tree()
    assert named - {"__init__.py"} == modules | folders, (
        f"not in docs/layout.md: {sorted((modules | folders) - named)}; "
        f"named there but gone: {sorted(named - modules - folders - {'__init__.py'})}"
    )


NAMED = re.compile(r"(?<![\w.])relunet(?:\.[A-Za-z_]\w*)+")  # relunet.reading.digits.read_batch


def _resolves(dotted: str) -> bool:
    """Whether a dotted name is a module of relunet, or a name defined in one."""
    parts = dotted.split(".")
    for end in range(len(parts), 0, -1):
        try:
            found = importlib.import_module(".".join(parts[:end]))
        except ImportError:
            continue
        for name in parts[end:]:
            if not hasattr(found, name):
                return False
            found = getattr(found, name)
        return True
    return False


def test_every_relunet_name_in_the_docs_and_docstrings_exists():
    """The Markdown pages, the package's source (its docstrings and comments), the
    benchmarks and the tests name modules and functions by their dotted paths; a module
    moved or a function renamed without them fails here, by name."""
    files = [
        *PAGES,
        *(ROOT / "src").rglob("*.py"),
        *(ROOT / "benchmarks").glob("*.py"),
        *(ROOT / "tests").rglob("*.py"),
    ]
    gone = {
        f"{name} ({path.relative_to(ROOT)})"
        for path in files
        for name in set(NAMED.findall(path.read_text()))
        if not name.endswith((".json", ".py", ".ipynb")) and not _resolves(name)
    }
    assert not gone, sorted(gone)
