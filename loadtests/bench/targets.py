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
from loadtests.bench.site import prepare_django


@dataclass(frozen=True)
class Target:
    """A WSGI application to serve, and how to prepare its environment."""

    name: str
    app: str
    ready_path: str
    prepare: Callable[[Path], dict[str, str]]


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
            from tests.servers import Servers

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
