"""The applications the benchmark serves, and how each is prepared before it starts.

A target is one gunicorn server. The project target runs in production mode on a
private SQLite file, migrated first, with none of the caller's service URLs: the
numbers describe the code, not whatever the shell happened to point at.
"""

from __future__ import annotations

import os
import secrets
import subprocess
import sys
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from loadtests.bench.errors import BenchError

BASE_DIR = Path(__file__).resolve().parents[2]

# Variables that would point the project at external services or another config.
DROPPED_VARIABLES = (
    "DATABASE_URL",
    "DATABASE_REPLICA_URLS",
    "REDIS_URL",
    "CELERY_BROKER_URL",
    "SQLITE_PATH",
    "GUNICORN_CMD_ARGS",
)


def base_environment() -> dict[str, str]:
    """Return the caller's environment without the variables in DROPPED_VARIABLES."""
    return {k: v for k, v in os.environ.items() if k not in DROPPED_VARIABLES}


def manage(env: dict[str, str], *args: str) -> str:
    """Run ``manage.py`` with ``env``; return its output or raise BenchError."""
    command = [sys.executable, str(BASE_DIR / "manage.py"), *args]
    result = subprocess.run(
        command,
        cwd=BASE_DIR,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        check=False,
    )
    if result.returncode != 0:
        raise BenchError(f"manage.py {' '.join(args)} failed:\n{result.stdout}")
    return result.stdout


@dataclass(frozen=True)
class Site:
    """A started target, as a case's setup sees it."""

    target: str
    base_url: str
    env: dict[str, str]
    workdir: Path

    def manage(self, *args: str) -> str:
        """Run ``manage.py`` against this target's database and settings."""
        return manage(self.env, *args)


@dataclass(frozen=True)
class Target:
    """A WSGI application to serve, and how to prepare its environment."""

    name: str
    app: str
    ready_path: str
    prepare: Callable[[Path], dict[str, str]]


def _prepare_nothing(workdir: Path) -> dict[str, str]:
    return {}


def _prepare_django(workdir: Path) -> dict[str, str]:
    """Return production-mode settings on a private SQLite file, migrated."""
    overrides = {
        "DJANGO_SETTINGS_MODULE": "config.settings",
        "DJANGO_DEBUG": "false",
        "DJANGO_SECRET_KEY": secrets.token_urlsafe(50),
        "DJANGO_ALLOWED_HOSTS": "127.0.0.1,localhost",
        "SQLITE_PATH": str(workdir / "bench.sqlite3"),
        "LOG_LEVEL": "WARNING",
    }
    manage(base_environment() | overrides, "migrate", "--noinput")
    return overrides


TARGETS: dict[str, Target] = {
    target.name: target
    for target in (
        Target("bare", "loadtests.bench.bare_wsgi:application", "/", _prepare_nothing),
        Target("django", "config.wsgi:application", "/healthz", _prepare_django),
    )
}
