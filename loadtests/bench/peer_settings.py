"""Bench-only settings: the project's own, plus trivial views limited by ours and by peers.

Never used in production: the peer views live in ``loadtests.bench.peer_urls``, which
only this module mounts. ``BENCH_RATELIMIT_LIMIT`` (default 100) is the per-60 s limit
every limiter here applies, so each one counts the same quota:

- ours: policies ``bench_sliding`` (the contract's algorithm) and ``bench_gcra``;
- DRF: ``AnonRateThrottle`` with scope ``bench``, on the django-redis cache;
- django-ratelimit: ``@ratelimit(key="ip", block=True)``, on the same cache.

The client identity of all three is the ``X-Forwarded-For`` hop appended by the
loopback "proxy" (the bench's own client), so a bench can spread requests over many
keys, and falls back to the socket address without the header.
"""

from __future__ import annotations

from typing import Any

from config.env import env_int
from config.settings import *  # noqa: F403  # this module is config.settings plus the peers
from config.settings import RATELIMIT_POLICIES, REST_FRAMEWORK

ROOT_URLCONF = "loadtests.bench.peer_urls"

BENCH_RATELIMIT_LIMIT = env_int("BENCH_RATELIMIT_LIMIT", 100, minimum=1)
BENCH_RATELIMIT_WINDOW = 60

# The bench client stands in for nginx on loopback.
RATELIMIT_TRUSTED_PROXIES = ["127.0.0.1"]
RATELIMIT_POLICIES = {
    **RATELIMIT_POLICIES,
    "bench_sliding": {
        "limit": BENCH_RATELIMIT_LIMIT,
        "window": BENCH_RATELIMIT_WINDOW,
        "scope": "ip",
        "algorithm": "sliding_window",
    },
    "bench_gcra": {
        "limit": BENCH_RATELIMIT_LIMIT,
        "window": BENCH_RATELIMIT_WINDOW,
        "scope": "ip",
        "algorithm": "gcra",
    },
}

_rest_framework: dict[str, Any] = dict(REST_FRAMEWORK)
_rest_framework.update(
    {
        # DRF reads the last X-Forwarded-For hop, the one the loopback proxy appended.
        "NUM_PROXIES": 1,
        "DEFAULT_THROTTLE_RATES": {"bench": f"{BENCH_RATELIMIT_LIMIT}/min"},
    }
)
REST_FRAMEWORK = _rest_framework  # noqa: F811  # replaces the base's on purpose


def forwarded_or_remote(request: Any) -> str:
    """Return the last ``X-Forwarded-For`` hop, else the socket address (django-ratelimit)."""
    forwarded = str(request.META.get("HTTP_X_FORWARDED_FOR") or "")
    hops = [hop.strip() for hop in forwarded.split(",") if hop.strip()]
    return hops[-1] if hops else str(request.META.get("REMOTE_ADDR") or "")


# django-ratelimit's own settings (its names, not ours): the cache and the client address.
RATELIMIT_USE_CACHE = "default"
RATELIMIT_IP_META_KEY = forwarded_or_remote
