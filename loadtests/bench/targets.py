"""The applications the benchmark serves, and how each is prepared before it starts.

A target is one gunicorn server. The project target runs in production mode on a
private SQLite file, migrated first, with none of the caller's service URLs: the
numbers describe the code, not whatever the shell happened to point at.
"""

from __future__ import annotations

import atexit
import os
import secrets
import subprocess
import sys
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from loadtests.bench import ratelimit, replicas
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


def _prepare_profile(*, redis: bool, l1: bool) -> Callable[[Path], dict[str, str]]:
    """Return a preparer of the public-profile targets: the django target, rate limits
    lifted, with (or without) a private Redis and L1; the Redis stops when the bench exits.
    """

    def prepare(workdir: Path) -> dict[str, str]:
        overrides = _prepare_django(workdir)
        overrides["RATELIMIT_OVERRIDES"] = "api=1000000000/60"
        overrides["CACHE_L1_MAX_ENTRIES"] = "10000" if l1 else "0"
        if redis:
            from deploy.local.servers import Servers

            servers = Servers(root=workdir / "servers")
            (workdir / "servers").mkdir()
            atexit.register(servers.stop)
            overrides["REDIS_URL"] = servers.start_redis()
        return overrides

    return prepare


TARGETS: dict[str, Target] = {
    target.name: target
    for target in (
        Target("bare", "loadtests.bench.bare_wsgi:application", "/", _prepare_nothing),
        Target("django", "config.wsgi:application", "/healthz", _prepare_django),
        # The same app without the metrics and access-log middleware, for their overhead.
        Target(
            "django-no-obs",
            "config.wsgi:application",
            "/healthz",
            lambda workdir: _prepare_django(workdir) | {"OBSERVABILITY_MIDDLEWARE": "false"},
        ),
        # The public profile read through each cache tier (see cases.py).
        Target(
            "profile-l1",
            "config.wsgi:application",
            "/healthz",
            _prepare_profile(redis=True, l1=True),
        ),
        Target(
            "profile-redis",
            "config.wsgi:application",
            "/healthz",
            _prepare_profile(redis=True, l1=False),
        ),
        Target(
            "profile-db",
            "config.wsgi:application",
            "/healthz",
            _prepare_profile(redis=False, l1=False),
        ),
        # Uncached reads on a private primary, without and with its streaming replica.
        Target(
            "replica-none",
            "config.wsgi:application",
            "/healthz",
            replicas.prepare(with_replica=False),
        ),
        Target(
            "replica-one",
            "config.wsgi:application",
            "/healthz",
            replicas.prepare(with_replica=True),
        ),
        # Trivial views behind each limiter compared, limits lifted (loadtests.bench.ratelimit).
        Target("ratelimit-peers", "config.wsgi:application", "/healthz", ratelimit.prepare_target),
    )
}
