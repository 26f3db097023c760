"""System check: a Redis Cluster is only ever spoken to by a cluster-aware cache backend.

Django's ``RedisCache`` and django-redis talk to one node: pointed at a cluster node,
every key of another node's slots fails with ``MOVED``. The check refuses that pairing
both ways: ``REDIS_CLUSTER_NODES`` with any other backend, and a single-node backend
whose server answers ``cluster_enabled:1``. An unreachable server is not judged here
(the cache fails open; ``/readyz`` reports it).
"""

from __future__ import annotations

from typing import Any

import redis
from django.conf import settings
from django.core.checks import CheckMessage, Error, Tags, register

from apps.core.redis_cluster import CLUSTER_BACKEND, REDIS_OR_OS_ERRORS
from apps.core.redis_topology import ClusterRedis

# Backends that talk to one Redis server and follow no MOVED redirect.
SINGLE_NODE_BACKENDS = (
    "django_redis.cache.RedisCache",
    "django.core.cache.backends.redis.RedisCache",
)


@register(Tags.caches)
def check_cluster_backend(app_configs: Any = None, **kwargs: Any) -> list[CheckMessage]:
    """Return an error for each cache that pairs a cluster with a single-node backend."""
    errors: list[CheckMessage] = []
    for alias, entry in settings.CACHES.items():
        backend = str(entry.get("BACKEND", ""))
        on_cluster = isinstance(settings.REDIS, ClusterRedis)
        if alias == "default" and on_cluster and backend != CLUSTER_BACKEND:
            errors.append(
                Error(
                    f"REDIS_CLUSTER_NODES is set but CACHES[{alias!r}] uses {backend}.",
                    hint=f"Use {CLUSTER_BACKEND}: this backend cannot follow MOVED.",
                    id="core.E101",
                )
            )
        elif backend in SINGLE_NODE_BACKENDS:
            for location in _locations(entry.get("LOCATION")):
                if _cluster_enabled(location):
                    errors.append(
                        Error(
                            f"CACHES[{alias!r}] uses {backend} on {location}, a Redis "
                            "Cluster node: keys of other nodes' slots fail with MOVED.",
                            hint=f"Set REDIS_CLUSTER_NODES (backend {CLUSTER_BACKEND}).",
                            id="core.E102",
                        )
                    )
    return errors


def _locations(location: object) -> list[str]:
    if isinstance(location, str):
        return [part for part in location.split(",") if part]
    if isinstance(location, list | tuple):
        return [str(part) for part in location]
    return []


def _cluster_enabled(url: str) -> bool:
    """Return whether the server at ``url`` is a cluster node (False if it does not answer)."""
    try:
        client = redis.Redis.from_url(url, socket_timeout=0.5, socket_connect_timeout=0.5)
        try:
            info = client.info("cluster")
        finally:
            client.close()
    except REDIS_OR_OS_ERRORS:
        return False
    return bool(info.get("cluster_enabled"))
