"""Load many documents into Redis at once, never over a newer value or a later change.

Each batch is one pipeline. A document read from the database before an invalidation
must not be stored after it, and the warm holds no leases; so before each batch's
database query the warm notes the Redis time, and the store script refuses a key whose
last invalidation is at or after that time. The time for the next batch comes back at
the end of the current batch's pipeline, so a batch costs one round trip.

On a Redis Cluster the batch's pipeline is split by redis-py into one request per
master (the keys of all its slots together), sent in parallel. Each key carries its own
generation there, and the read-start time is the earliest clock among the masters
(``TIME`` of each, one more round trip per batch): an invalidation stamped by any
master after the read began is at or after that time, so it is never overwritten.
"""

from __future__ import annotations

import time
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

from redis.cluster import RedisCluster

from apps.core.cache import scripts
from apps.core.cache.tiered import CachedValue, TieredCache, encode_value, make_etag


@dataclass
class WarmStats:
    """What a warm did: keys stored, kept (already cached), refused, and pipelines sent."""

    stored: int = 0
    already_cached: int = 0
    refused: int = 0
    pipelines: int = 0
    refused_keys: list[str] = field(default_factory=list)

    @property
    def total(self) -> int:
        """Return how many documents were offered to the cache."""
        return self.stored + self.already_cached + self.refused


class Warmer:
    """Store documents of one kind in Redis in batches, one pipeline per batch."""

    def __init__(self, cache: TieredCache, *, kind: str, ttl: int) -> None:
        if cache.client is None:
            raise RuntimeError("warming needs Redis: set REDIS_URL or REDIS_CLUSTER_NODES")
        self.cache = cache
        self.client = cache.client
        self.kind = kind
        self.ttl = ttl
        self.stats = WarmStats()
        self._generation = b""
        self._read_start = b""
        self._warm_sha = ""
        self._start_sha = ""

    def begin(self) -> None:
        """Load the scripts and note where the first batch's reads start (one round trip)."""
        if isinstance(self.client, RedisCluster):
            self._read_start = self._cluster_read_start(self.client)
            return
        pipe = self.client.pipeline(transaction=False)
        pipe.script_load(scripts.WARM)
        pipe.script_load(scripts.WARM_START)
        pipe.eval(scripts.WARM_START, 1, self.cache.generation_key)
        self._warm_sha, self._start_sha, start = pipe.execute()
        self._generation, self._read_start = start

    def store(self, documents: Iterable[tuple[int | str, Any]]) -> None:
        """Store one batch read after the last ``begin``/``store``: a single pipeline."""
        if isinstance(self.client, RedisCluster):
            self._store_on_cluster(self.client, documents)
            return
        pipe = self.client.pipeline(transaction=False)
        keys: list[str] = []
        expires_at = time.time() + self.ttl
        for ident, data in documents:
            key = self.cache.redis_key(f"{self.kind}:{ident}")
            keys.append(key)
            payload = encode_value(CachedValue(data, make_etag(data), expires_at, 0.0))
            pipe.evalsha(
                self._warm_sha,
                3,
                self.cache.generation_key,
                key,
                key + ":inv",
                self._generation,
                self._read_start,
                payload,
                self.ttl,
            )
        pipe.evalsha(self._start_sha, 1, self.cache.generation_key)
        *outcomes, start = pipe.execute()
        self.stats.pipelines += 1
        self._generation, self._read_start = start
        self._count(keys, outcomes)

    def _store_on_cluster(
        self, client: RedisCluster, documents: Iterable[tuple[int | str, Any]]
    ) -> None:
        pipe = client.pipeline(transaction=False)  # type: ignore[no-untyped-call]  # untyped
        keys: list[str] = []
        expires_at = time.time() + self.ttl
        for ident, data in documents:
            logical = f"{self.kind}:{ident}"
            key = self.cache.redis_key(logical)
            keys.append(key)
            payload = encode_value(CachedValue(data, make_etag(data), expires_at, 0.0))
            script_keys = [self.cache.generation_key_of(logical), key, key + ":inv"]
            # EVAL, not EVALSHA: as in TieredCache._invalidate_in_redis.
            pipe.execute_command(
                "EVAL", scripts.CLUSTER_WARM, 3, *script_keys, self._read_start, payload, self.ttl
            )
        outcomes = pipe.execute()
        self.stats.pipelines += 1
        self._read_start = self._cluster_read_start(client)
        self._count(keys, outcomes)

    @staticmethod
    def _cluster_read_start(client: RedisCluster) -> bytes:
        """Return the earliest ``TIME`` (µs) among the masters, as the scripts write it."""
        times = client.time(target_nodes=RedisCluster.PRIMARIES)
        values = times.values() if isinstance(times, dict) else [times]
        return str(min(seconds * 1_000_000 + micros for seconds, micros in values)).encode()

    def _count(self, keys: list[str], outcomes: list[Any]) -> None:
        for key, outcome in zip(keys, outcomes, strict=True):
            if outcome == 1:
                self.stats.stored += 1
            elif outcome == 0:
                self.stats.already_cached += 1
            else:
                self.stats.refused += 1
                self.stats.refused_keys.append(key)
