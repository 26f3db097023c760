"""What every part of the bench shares: the repository, a clean environment, ``manage.py``.

Targets, cases and sections all import from here and nothing here imports them, so the
bench's imports form no circle.
"""

from __future__ import annotations

import os
import secrets
import subprocess
import sys
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

from loadtests.bench.errors import BenchError

BASE_DIR = Path(__file__).resolve().parents[2]
# deploy/gunicorn.conf.py: the web servers the bench compares all run on it.
GUNICORN_CONFIG = BASE_DIR / "deploy" / "gunicorn.conf.py"

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


def production_settings(settings_module: str = "config.settings") -> dict[str, str]:
    """Return the variables of production mode (no debug, a fresh secret, loopback hosts)."""
    return {
        "DJANGO_SETTINGS_MODULE": settings_module,
        "DJANGO_DEBUG": "false",
        "DJANGO_SECRET_KEY": secrets.token_urlsafe(50),
        "DJANGO_ALLOWED_HOSTS": "127.0.0.1,localhost",
        "LOG_LEVEL": "WARNING",
    }


def manage(env: Mapping[str, str], *args: str) -> str:
    """Run ``manage.py`` with ``env``; return its output or raise BenchError."""
    command = [sys.executable, str(BASE_DIR / "manage.py"), *args]
    result = subprocess.run(
        command,
        cwd=BASE_DIR,
        env=dict(env),
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        check=False,
    )
    if result.returncode != 0:
        raise BenchError(f"manage.py {' '.join(args)} failed:\n{result.stdout}")
    return result.stdout


def prepare_django(workdir: Path) -> dict[str, str]:
    """Return production-mode settings on a private SQLite file, migrated."""
    overrides = production_settings() | {"SQLITE_PATH": str(workdir / "bench.sqlite3")}
    manage(base_environment() | overrides, "migrate", "--noinput")
    return overrides


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
class Request:
    """What wrk sends for a case: a path and extra headers."""

    path: str
    headers: Mapping[str, str] = field(default_factory=dict)
