"""docs/environment.md lists every variable the code reads, and nothing it does not read."""

from __future__ import annotations

import re
from pathlib import Path

from tests.config.subprocess_env import ROOT
from tests.docs.markdown import ENVIRONMENT, table_first_cells

# Where the project's own processes read their environment: the settings and apps, the
# gunicorn config, make stack and the local launchers, and the k6 scripts.
PYTHON_SOURCES = ("config", "apps", "deploy")
K6_SOURCES = ROOT / "loadtests" / "k6"
READ = re.compile(
    r"""(?:env_str|env_int|env_bool|env_list|os\.getenv|environ\.get|environ\.setdefault)"""
    r"""\(\s*"([A-Z][A-Z0-9_]+)"|environ\[\s*"([A-Z][A-Z0-9_]+)"\s*\]"""
)
STACK_NAME = re.compile(r'"(STACK_[A-Z0-9_]+)"')
K6_READ = re.compile(r"__ENV\.([A-Z][A-Z0-9_]+)")
# Read by the operating system or a framework, not configuration of highscale.
NOT_OURS = {"PATH", "HOME", "DJANGO_SETTINGS_MODULE"}
VARIABLE = re.compile(r"`([A-Z][A-Z0-9_]+)`")


def python_files() -> list[Path]:
    return [p for d in PYTHON_SOURCES for p in sorted((ROOT / d).rglob("*.py"))]


def variables_read() -> dict[str, str]:
    """Return every variable the code reads, with the first file that reads it."""
    found: dict[str, str] = {}
    for path in python_files():
        text = path.read_text()
        names = [a or b for a, b in READ.findall(text)]
        if path.is_relative_to(ROOT / "deploy" / "stack"):
            names += STACK_NAME.findall(text)
        for name in names:
            found.setdefault(name, str(path.relative_to(ROOT)))
    for path in sorted(K6_SOURCES.rglob("*.js")):
        for name in K6_READ.findall(path.read_text()):
            found.setdefault(name, str(path.relative_to(ROOT)))
    return {name: where for name, where in found.items() if name not in NOT_OURS}


def variables_documented() -> set[str]:
    """Return every variable named in the first column of the reference's tables."""
    names: set[str] = set()
    for cell in table_first_cells(ENVIRONMENT.read_text()):
        names.update(VARIABLE.findall(cell))
    return names


def source_text() -> str:
    files = python_files() + sorted(K6_SOURCES.rglob("*.js")) + [ROOT / "Makefile"]
    return "\n".join(p.read_text() for p in files)


def test_the_reader_finds_the_variables_settings_read() -> None:
    # Guard against a regex that matches nothing and so proves nothing.
    read = variables_read()
    for name in ("DATABASE_URL", "DATABASE_STICKING_SECONDS", "WEB_CONCURRENCY", "STACK_VAR_DIR"):
        assert name in read, name
    assert "BASE_URL" in read
    assert len(read) > 80


def test_every_variable_the_code_reads_is_in_the_reference() -> None:
    documented = variables_documented()
    missing = {name: where for name, where in variables_read().items() if name not in documented}
    assert not missing, f"read by the code but missing from docs/environment.md: {missing}"


def test_every_variable_in_the_reference_is_read_somewhere() -> None:
    words = set(re.findall(r"\b[A-Z][A-Z0-9_]+\b", source_text()))
    unread = sorted(variables_documented() - words)
    assert not unread, f"in docs/environment.md but read nowhere: {unread}"


def test_every_section_of_the_reference_has_a_table_with_defaults_described() -> None:
    text = ENVIRONMENT.read_text()
    headings = re.findall(r"^## (.+)$", text, re.M)
    assert len(headings) >= 8
    for body in re.split(r"^## .+$", text, flags=re.M)[1:]:
        assert table_first_cells(body), "a capability section without a variable table"
