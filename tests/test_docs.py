"""The front door stays true: the README's test command is the one CI runs, and every
link and picture in the Markdown points at a file that exists, with no placeholder
left for output that was never pasted in."""

import re
from pathlib import Path

import pytest

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
