"""Read README.md and docs/*.md the way the doc tests need them: tables, links, snippets."""

from __future__ import annotations

import re
from pathlib import Path

from tests.config.subprocess_env import ROOT

README = ROOT / "README.md"
DOCS = ROOT / "docs"
ENVIRONMENT = DOCS / "environment.md"
_FENCE = re.compile(r"^```.*?^```", re.M | re.S)
_LINK = re.compile(r"\[[^\]]*\]\(([^)\s]+)\)")
_HEADING = re.compile(r"^#{1,6} (.+)$", re.M)


def pages() -> list[Path]:
    """Return README.md and every guide under docs/."""
    return [README, *sorted(DOCS.glob("*.md"))]


def without_code(text: str) -> str:
    """Return ``text`` without fenced code blocks (their brackets are not links)."""
    return _FENCE.sub("", text)


def relative_links(path: Path) -> list[str]:
    """Return the targets of the page's Markdown links that stay inside the repository."""
    targets = _LINK.findall(without_code(path.read_text()))
    return [t for t in targets if not re.match(r"^[a-z][a-z0-9+.-]*:", t)]


def anchor(heading: str) -> str:
    """Return GitHub's anchor for a heading: lower case, punctuation dropped, - for spaces."""
    text = re.sub(r"[`*_]", "", heading.strip().lower())
    text = re.sub(r"[^\w\- ]", "", text)
    return text.replace(" ", "-")


def anchors(path: Path) -> set[str]:
    """Return the anchors of every heading of the page."""
    return {anchor(h) for h in _HEADING.findall(without_code(path.read_text()))}


def section(text: str, title: str) -> str:
    """Return the body of the level-2 section ``title`` (up to the next level-2 heading)."""
    match = re.search(rf"^## {re.escape(title)}\n(.*?)(?=^## |\Z)", text, re.M | re.S)
    if match is None:
        raise AssertionError(f"README.md has no section '## {title}'")
    return match.group(1)


def table_first_cells(text: str) -> list[str]:
    """Return the first cell of every row of the Markdown tables in ``text``."""
    cells = []
    for line in text.splitlines():
        if line.startswith("| `"):
            cells.append(line.split("|")[1].strip())
    return cells


def shell_snippets(text: str) -> list[str]:
    """Return the bodies of the ```sh blocks in ``text``."""
    return re.findall(r"^```sh\n(.*?)^```", text, re.M | re.S)
