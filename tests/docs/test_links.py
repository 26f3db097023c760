"""Every relative link in README.md and docs/ leads to a file, and to a heading if it names one."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.config.subprocess_env import ROOT
from tests.docs.markdown import anchors, pages, relative_links


@pytest.mark.parametrize("page", pages(), ids=lambda p: str(p.relative_to(ROOT)))
def test_relative_links_resolve(page: Path) -> None:
    broken = []
    for target in relative_links(page):
        file_part, _, fragment = target.partition("#")
        path = (page.parent / file_part).resolve() if file_part else page
        if not path.exists():
            broken.append(f"{target}: no such file")
        elif fragment and path.suffix == ".md" and fragment not in anchors(path):
            broken.append(f"{target}: no heading with that anchor")
    assert not broken, f"{page.relative_to(ROOT)}: {broken}"


def test_the_readme_links_every_guide() -> None:
    linked = {t.partition("#")[0] for t in relative_links(ROOT / "README.md")}
    guides = {f"docs/{p.name}" for p in (ROOT / "docs").glob("*.md")}
    assert guides, "no guides found"
    assert not guides - linked, f"guides missing from README's map: {sorted(guides - linked)}"
