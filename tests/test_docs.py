"""The documentation: a short README whose map names real modules and tests, and no link to a missing file."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

REPOSITORY_ROOT = Path(__file__).resolve().parents[1]
README = REPOSITORY_ROOT / "README.md"
PAGES = [README, REPOSITORY_ROOT / "CONTRIBUTING.md", *sorted((REPOSITORY_ROOT / "docs").glob("*.md"))]
#: Where the map's module names live unless they name a path from the repository's root.
PACKAGE = Path("layers/picsart_adapter/picsart_adapter")
#: First path parts (or files) that mean a path from the repository's root.
ROOT_PARTS = frozenset({"functions", "layers", "local", "tests", "docs", "events", "samples", "template.yaml"})
MAP_HEADING = "## Where each behaviour lives"
MAX_README_LINES = 150

#: [text](target) and ![alt](target); the target ends at the first space (a title may follow) or parenthesis.
LINK = re.compile(r"!?\[[^\]]*\]\(\s*<?([^)\s>]+)>?(?:\s+\"[^\"]*\")?\s*\)")
CODE_FENCE = re.compile(r"^(```|~~~).*?^\1", re.MULTILINE | re.DOTALL)
CODE_SPAN = re.compile(r"`([^`]+)`")


def _relative_links(page: Path) -> list[str]:
    text = CODE_FENCE.sub("", page.read_text(encoding="utf-8"))
    text = re.sub(r"`[^`\n]*`", "", text)  # a link written as code is not a link
    targets = [match.group(1) for match in LINK.finditer(text)]
    return [t for t in targets if not re.match(r"^[a-z][a-z0-9+.-]*:", t, re.IGNORECASE) and not t.startswith("#")]


def _map_rows() -> list[list[str]]:
    """The cells of each row of the README's map (behaviour, module, tests), header and rule left out."""
    section = README.read_text(encoding="utf-8").split(MAP_HEADING, 1)[1].split("\n## ", 1)[0]
    rows = [line.strip().strip("|").split("|") for line in section.splitlines() if line.strip().startswith("|")]
    return [[cell.strip() for cell in row] for row in rows[2:]]


def _module_path(name: str) -> Path:
    first = name.split("/", 1)[0]
    return REPOSITORY_ROOT / name if first in ROOT_PARTS else REPOSITORY_ROOT / PACKAGE / name


def test_the_readme_is_a_front_door_of_at_most_150_lines() -> None:
    lines = len(README.read_text(encoding="utf-8").splitlines())
    assert lines <= MAX_README_LINES, f"README.md has {lines} lines: move detail to a page in docs/"


@pytest.mark.parametrize("page", PAGES, ids=lambda page: str(page.relative_to(REPOSITORY_ROOT)))
def test_every_relative_link_points_to_a_file_that_exists(page: Path) -> None:
    links = _relative_links(page)
    missing = [t for t in links if not (page.parent / t.split("#", 1)[0]).exists()]
    assert not missing, f"{page.name} links to files that do not exist: {missing}"


def test_the_docs_pages_exist_and_the_readme_links_each_of_them() -> None:
    linked = {(README.parent / target).resolve() for target in _relative_links(README)}
    pages = {page.resolve() for page in PAGES if page != README}
    assert pages, "the docs pages"
    assert pages <= linked, f"pages the README does not link: {sorted(str(p) for p in pages - linked)}"


def test_every_module_and_test_in_the_readmes_map_exists() -> None:
    rows = _map_rows()
    assert len(rows) >= 20, "the map has a row per behaviour"
    named: list[Path] = []
    for behaviour, modules, tests in rows:
        module_names = CODE_SPAN.findall(modules)
        test_names = CODE_SPAN.findall(tests)
        assert module_names, f"the row {behaviour!r} names its module"
        assert test_names, f"the row {behaviour!r} names its tests"
        named.extend(_module_path(name) for name in module_names)
        named.extend(REPOSITORY_ROOT / "tests" / name for name in test_names)
    missing = sorted(str(path.relative_to(REPOSITORY_ROOT)) for path in named if not path.exists())
    assert not missing, f"the README's map names modules or tests that do not exist: {missing}"
