"""django-prometheus's cache metrics for the ``default`` cache, Redis or in-process.

``django_cache_get_total``, ``django_cache_get_hits_total``,
``django_cache_get_misses_total`` and ``django_cache_get_fail_total`` (label
``backend``: ``redis`` or ``locmem``) count the reads made through Django's cache API
(``cache.get``). They are django-prometheus's own counters, counted here rather than by
its backend classes for two reasons:

- the Redis cache must stay django-redis's ``RedisCache`` (the tiered cache recognises
  it by that backend path and takes its connection pool), or django-valkey's
  ``ClusterValkeyCache`` on a Redis Cluster, so the counting sits in the
  ``CLIENT_CLASS`` option instead of a backend subclass;
- django-prometheus's local-memory backend answers the default for a cached falsy value
  (``0``, ``""``, ``[]``) and counts a cached ``None`` as a miss; these count a hit
  whenever the key is present.

The tiered cache's own lookups (L1, Redis, database) are counted apart, by tier, in
``cache_requests`` (apps/core/cache/metrics.py); they do not go through ``cache.get``.
"""

from __future__ import annotations

from typing import Any

from django.core.cache.backends import locmem
from django_prometheus.cache.metrics import (
    django_cache_get_fail_total,
    django_cache_get_total,
    django_cache_hits_total,
    django_cache_misses_total,
)
from django_redis.client import DefaultClient
from django_redis.exceptions import ConnectionInterrupted
from django_valkey.exceptions import ConnectionInterrupted as ValkeyConnectionInterrupted

from apps.core.cache.cluster import ClusterCacheClient

# A value no cache holds: tells a present key (whatever its value) from a missing one.
_MISSING = object()


def _count(backend: str, value: object) -> bool:
    """Count one read that found ``value``; return whether it was a hit."""
    django_cache_get_total.labels(backend=backend).inc()
    if value is _MISSING:
        django_cache_misses_total.labels(backend=backend).inc()
        return False
    django_cache_hits_total.labels(backend=backend).inc()
    return True


# django-redis ships no type information, hence the base class is Any to mypy.
class RedisClient(DefaultClient):  # type: ignore[misc]
    """django-redis's default client, counting each ``get`` as django-prometheus does."""

    def get(
        self, key: Any, default: Any = None, version: int | None = None, client: Any = None
    ) -> Any:
        """Return the cached value of ``key``, or ``default``; count the read."""
        try:
            value = super().get(key, default=_MISSING, version=version, client=client)
        except ConnectionInterrupted:
            django_cache_get_total.labels(backend="redis").inc()
            django_cache_get_fail_total.labels(backend="redis").inc()
            raise
        return value if _count("redis", value) else default


class ClusterClient(ClusterCacheClient):
    """The cluster cache client (``apps.core.cache.cluster``), counting each ``get``."""

    def get(
        self, key: Any, default: Any = None, version: int | None = None, client: Any = None
    ) -> Any:
        """Return the cached value of ``key``, or ``default``; count the read."""
        try:
            value = super().get(key, default=_MISSING, version=version, client=client)
        except ValkeyConnectionInterrupted:
            django_cache_get_total.labels(backend="redis").inc()
            django_cache_get_fail_total.labels(backend="redis").inc()
            raise
        return value if _count("redis", value) else default


class LocMemCache(locmem.LocMemCache):
    """Django's local-memory cache, counting each ``get`` as django-prometheus does."""

    def get(self, key: Any, default: Any = None, version: int | None = None) -> Any:
        """Return the cached value of ``key``, or ``default``; count the read."""
        value = super().get(key, _MISSING, version)
        return value if _count("locmem", value) else default
