"""The applications the benchmark serves, and how each is prepared before it starts.

A target is one gunicorn server. The project target runs in production mode on a
private SQLite file, migrated first, with none of the caller's service URLs: the
numbers describe the code, not whatever the shell happened to point at.
"""

from __future__ import annotations

import atexit
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from loadtests.bench import ratelimit, replicas
from loadtests.bench.site import base_environment, manage, prepare_django, production_settings

PLAIN_DJANGO = "loadtests.bench.django_wsgi:application"
TEXTBOOK_SETTINGS = "loadtests.bench.textbook_settings"


@dataclass(frozen=True)
class Target:
    """A WSGI application to serve, and how to prepare its environment."""

    name: str
    app: str
    ready_path: str
    prepare: Callable[[Path], dict[str, str]]
    # Served on deploy/gunicorn.conf.py (its hooks and settings) instead of bare flags.
    deploy_config: bool = False


def _prepare_nothing(workdir: Path) -> dict[str, str]:
    return {}


def _prepare_profile(*, redis: bool, l1: bool) -> Callable[[Path], dict[str, str]]:
    """Return a preparer of the public-profile targets: the django target, rate limits
    lifted, with (or without) a private Redis and L1; the Redis stops when the bench exits.
    """

    def prepare(workdir: Path) -> dict[str, str]:
        overrides = prepare_django(workdir)
        overrides["RATELIMIT_OVERRIDES"] = "api=1000000000/60"
        overrides["CACHE_L1_MAX_ENTRIES"] = "10000" if l1 else "0"
        if redis:
            overrides["REDIS_URL"] = _private_redis(workdir)
        return overrides

    return prepare


def _private_redis(workdir: Path) -> str:
    """Start a Redis of the target's own, stopped when the bench exits; return its URL."""
    from deploy.local.servers import Servers

    servers = Servers(root=workdir / "servers")
    (workdir / "servers").mkdir()
    atexit.register(servers.stop)
    return servers.start_redis()


def deploy_config_environment(workdir: Path) -> dict[str, str]:
    """Return what deploy/gunicorn.conf.py needs from a bench server: a metrics directory
    of its own, and recycling off (a recycle costs a Django start-up, which at bench
    rates would land every few seconds; the metrics section measures recycling).
    """
    return {"PROMETHEUS_MULTIPROC_DIR": str(workdir / "prometheus"), "GUNICORN_MAX_REQUESTS": "0"}


def _prepare_profile_ours(workdir: Path) -> dict[str, str]:
    """Prepare highscale's cached profile read as deployed: L1 and Redis, limits lifted."""
    return _prepare_profile(redis=True, l1=True)(workdir) | deploy_config_environment(workdir)


def prepare_textbook(workdir: Path, redis_url: str | None = None) -> dict[str, str]:
    """Prepare the textbook peer (loadtests.bench.textbook_settings) on a private SQLite
    file, migrated, with ``redis_url`` or else a private Redis; its limit lifted unless
    BENCH_TEXTBOOK_RATE says otherwise.
    """
    overrides = production_settings(TEXTBOOK_SETTINGS) | {
        "SQLITE_PATH": str(workdir / "textbook.sqlite3"),
    }
    manage(base_environment() | overrides, "migrate", "--noinput")
    overrides["REDIS_URL"] = redis_url or _private_redis(workdir)
    return overrides | deploy_config_environment(workdir)


TARGETS: dict[str, Target] = {
    target.name: target
    for target in (
        Target("bare", "loadtests.bench.bare_wsgi:application", "/", _prepare_nothing),
        # The cached profile read against the textbook peer: both behind Django's own
        # handler on the deployed gunicorn config.
        Target("profile-ours", PLAIN_DJANGO, "/healthz", _prepare_profile_ours, deploy_config=True),
        Target("profile-textbook", PLAIN_DJANGO, "/healthz", prepare_textbook, deploy_config=True),
        Target("django", "config.wsgi:application", "/healthz", prepare_django),
        # The same app without the metrics and access-log middleware, for their overhead.
        Target(
            "django-no-obs",
            "config.wsgi:application",
            "/healthz",
            lambda workdir: prepare_django(workdir) | {"OBSERVABILITY_MIDDLEWARE": "false"},
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
