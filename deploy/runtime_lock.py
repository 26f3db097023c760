"""The image's lock: the packages the app needs to run, pinned as in requirements.lock.

``python -m deploy.runtime_lock`` writes ``requirements-runtime.lock``: the transitive
closure of ``[project].dependencies`` in pyproject.toml (extras and environment markers
followed as pip would on Linux, CPython 3.11), each pinned to the version
requirements.lock pins. The dependencies are read from the installed distributions'
metadata, so run it in the project's venv after ``make install``.
``python -m deploy.runtime_lock --sizes`` prints the installed size of both locks' sets.
tests/deploy/test_image.py checks that the file is what this writes.
"""

from __future__ import annotations

import argparse
import sys
import tomllib
from collections.abc import Iterable
from importlib import metadata
from pathlib import Path

from packaging.requirements import Requirement
from packaging.utils import NormalizedName, canonicalize_name

ROOT = Path(__file__).resolve().parents[1]
PYPROJECT = ROOT / "pyproject.toml"
FULL_LOCK = ROOT / "requirements.lock"
RUNTIME_LOCK = ROOT / "requirements-runtime.lock"
HEADER = (
    "# The packages the image installs: pyproject's [project].dependencies and what they\n"
    "# need, pinned as in requirements.lock. Generated: python -m deploy.runtime_lock\n"
)


def read_lock(path: Path) -> dict[NormalizedName, tuple[str, str]]:
    """Return ``name -> (spelling, version)`` of every ``name==version`` line of a lock."""
    pins: dict[NormalizedName, tuple[str, str]] = {}
    for line in path.read_text().splitlines():
        line = line.split("#", 1)[0].strip()
        if not line:
            continue
        name, sep, version = line.partition("==")
        if not sep:
            raise ValueError(f"{path.name}: {line!r} is not pinned with ==")
        pins[canonicalize_name(name.strip())] = (name.strip(), version.strip())
    return pins


def runtime_requirements() -> list[Requirement]:
    """Return pyproject.toml's ``[project].dependencies``."""
    project = tomllib.loads(PYPROJECT.read_text())["project"]
    return [Requirement(text) for text in project["dependencies"]]


def closure(roots: Iterable[Requirement]) -> set[NormalizedName]:
    """Return every distribution ``roots`` need, following extras and markers."""
    needed: set[NormalizedName] = set()
    # (distribution, extras asked of it) still to expand.
    pending = [(canonicalize_name(r.name), frozenset(r.extras)) for r in roots]
    expanded: set[tuple[NormalizedName, frozenset[str]]] = set()
    while pending:
        name, extras = pending.pop()
        if (name, extras) in expanded:
            continue
        expanded.add((name, extras))
        needed.add(name)
        for text in metadata.requires(name) or []:
            requirement = Requirement(text)
            if requirement.marker is not None and not any(
                requirement.marker.evaluate({"extra": extra}) for extra in ("", *extras)
            ):
                continue
            pending.append((canonicalize_name(requirement.name), frozenset(requirement.extras)))
    return needed


def render() -> str:
    """Return the text of ``requirements-runtime.lock``."""
    pins = read_lock(FULL_LOCK)
    needed = closure(runtime_requirements())
    missing = sorted(needed - set(pins))
    if missing:
        raise SystemExit(f"requirements.lock pins none of: {', '.join(missing)}")
    lines = [f"{pins[name][0]}=={pins[name][1]}" for name in sorted(needed)]
    return HEADER + "\n".join(lines) + "\n"


def installed_bytes(names: Iterable[NormalizedName]) -> int:
    """Return the bytes the installed files of these distributions take on disk."""
    total = 0
    for name in names:
        for file in metadata.distribution(name).files or []:
            path = Path(str(file.locate()))
            if path.is_file():
                total += path.stat().st_size
    return total


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m deploy.runtime_lock", description=__doc__)
    parser.add_argument("--sizes", action="store_true", help="print the installed sizes")
    args = parser.parse_args(argv)
    if args.sizes:
        full, runtime = set(read_lock(FULL_LOCK)), set(read_lock(RUNTIME_LOCK))
        for label, names in (("requirements.lock", full), ("requirements-runtime.lock", runtime)):
            size = installed_bytes(names)
            print(f"{label}: {len(names)} packages, {size / 2**20:.1f} MiB installed")
        return 0
    RUNTIME_LOCK.write_text(render())
    print(f"wrote {RUNTIME_LOCK.relative_to(ROOT)}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
