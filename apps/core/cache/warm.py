"""Load many documents into Redis at once, never over a newer value or a later change.

Each batch is one pipeline. A document read from the database before an invalidation
must not be stored after it, and the warm holds no leases; so before each batch's
database query the warm notes the Redis time, and the store script refuses a key whose
last invalidation is at or after that time. The time for the next batch comes back at
the end of the current batch's pipeline, so a batch costs one round trip.
"""

from __future__ import annotations

import time
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

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
            raise RuntimeError("warming needs Redis: set REDIS_URL")
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
        pipe = self.client.pipeline(transaction=False)
        pipe.script_load(scripts.WARM)
        pipe.script_load(scripts.WARM_START)
        pipe.eval(scripts.WARM_START, 1, self.cache.generation_key)
        self._warm_sha, self._start_sha, start = pipe.execute()
        self._generation, self._read_start = start

    def store(self, documents: Iterable[tuple[int | str, Any]]) -> None:
        """Store one batch read after the last ``begin``/``store``: a single pipeline."""
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
        for key, outcome in zip(keys, outcomes, strict=True):
            if outcome == 1:
                self.stats.stored += 1
            elif outcome == 0:
                self.stats.already_cached += 1
            else:
                self.stats.refused += 1
                self.stats.refused_keys.append(key)
