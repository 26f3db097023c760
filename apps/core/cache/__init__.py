"""Multi-level caching primitives: L1 in each process, Redis shared, database behind.

Use ``tiered_cache().get(key, loader, ttl=...)`` to read through, and
``invalidate_on_commit(kind, ids)`` from the write path (or the model's signal
receivers) to drop entries once the change is committed. See ``tiered`` for why a stale
value can never be written back.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from functools import partial

from django.conf import settings
from django.core.exceptions import ImproperlyConfigured
from django.db import DEFAULT_DB_ALIAS, transaction
from redis import Redis
from redis.backoff import NoBackoff
from redis.cluster import RedisCluster
from redis.retry import Retry

from apps.core.cache.config import CacheConfig
from apps.core.cache.tiered import CachedValue, TieredCache, make_etag
from apps.core.forks import ProcessLocal
from apps.core.redis_cluster import CLUSTER_BACKEND
from apps.core.redis_topology import ClusterRedis

__all__ = [
    "CacheConfig",
    "CachedValue",
    "TieredCache",
    "invalidate_on_commit",
    "make_etag",
    "redis_client",
    "tiered_cache",
    "use_tiered_cache",
]


def redis_client() -> Redis | RedisCluster | None:
    """Return the pooled client of the Redis cache, or None when the cache is not Redis.

    On a Redis Cluster (``REDIS_CLUSTER_NODES``) this is a redis-py cluster client of
    this process: the Django cache itself runs on django-valkey, whose client is
    valkey-py's.
    """
    backend = str(settings.CACHES["default"]["BACKEND"])
    if backend == CLUSTER_BACKEND:
        return _cluster.get()
    if not backend.startswith("django_redis."):
        return None
    from django_redis import get_redis_connection

    client: Redis = get_redis_connection("default")
    return client


def _new_cluster_client() -> RedisCluster:
    topology = settings.REDIS
    if not isinstance(topology, ClusterRedis):
        raise ImproperlyConfigured("the cluster cache backend needs REDIS_CLUSTER_NODES")
    timeout = settings.CACHES["default"]["OPTIONS"].get("SOCKET_TIMEOUT", 0.1)
    return topology.client(
        socket_timeout=timeout, socket_connect_timeout=timeout, retry=Retry(NoBackoff(), 0)
    )


_cluster: ProcessLocal[RedisCluster] = ProcessLocal(_new_cluster_client)


def _new_tiered_cache() -> TieredCache:
    from apps.core.cache.pending import PendingInvalidationLog

    return TieredCache(
        redis_client(), CacheConfig.from_settings(), pending=PendingInvalidationLog()
    )


_default: ProcessLocal[TieredCache] = ProcessLocal(_new_tiered_cache)


def tiered_cache() -> TieredCache:
    """Return this process's tiered cache (a new one after a fork)."""
    return _default.get()


@contextmanager
def use_tiered_cache(cache: TieredCache) -> Iterator[TieredCache]:
    """Make ``cache`` this process's tiered cache inside the block (tests, tools)."""
    previous = _default.set(cache)
    try:
        yield cache
    finally:
        _default.set(previous)


def invalidate_on_commit(
    kind: str, ids: Iterable[int | str], *, using: str = DEFAULT_DB_ALIAS
) -> None:
    """Invalidate ``kind:id`` for each id once the current transaction commits.

    Outside a transaction this runs at once (the write has committed); after a
    rollback it never runs, so a write that did not happen invalidates nothing.
    With Redis, the invalidation is also recorded in the transaction and replayed if
    Redis misses it (see ``pending``): one insert, and one delete after the commit.
    """
    idents = list(ids)
    if not idents:
        return
    record_id = None
    if tiered_cache().client is not None:
        from apps.core.cache.pending import pending_invalidation_record

        record_id = pending_invalidation_record(kind, idents, using=using)
    transaction.on_commit(partial(_invalidate_now, kind, idents, record_id, using), using=using)


def _invalidate_now(kind: str, ids: list[int | str], record_id: int | None, using: str) -> None:
    if tiered_cache().invalidate(kind, ids) and record_id is not None:
        from apps.core.cache.pending import pending_invalidation_done

        pending_invalidation_done(record_id, using=using)
