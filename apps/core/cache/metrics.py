"""Counters of the cache tiers, exported with the process's other Prometheus metrics."""

from __future__ import annotations

from prometheus_client import Counter

CACHE_REQUESTS = Counter(
    "cache_requests",
    "Read-through lookups by the tier that answered (l1, redis, database).",
    ["tier"],
)
CACHE_ERRORS = Counter(
    "cache_errors",
    "Redis operations of the cache that failed (and fell through to the database).",
    ["operation"],
)
CACHE_FILLS_REJECTED = Counter(
    "cache_fills_rejected",
    "Fills refused because an invalidation, or a newer value, came first.",
)
CACHE_INVALIDATIONS_REPLAYED = Counter(
    "cache_invalidations_replayed",
    "Recorded invalidations replayed to Redis after their commit hook could not deliver them.",
)


# The labelled counter per tier: `labels()` validates and locks on every call, and an
# L1 hit costs less than that.
_tier_counters: dict[str, Counter] = {}


def count_request(tier: str) -> None:
    """Count one read-through lookup answered by ``tier`` (l1, redis, database)."""
    counter = _tier_counters.get(tier)
    if counter is None:
        counter = _tier_counters[tier] = CACHE_REQUESTS.labels(tier=tier)
    counter.inc()


def count_error(operation: str) -> None:
    """Count one failed Redis operation of the cache."""
    CACHE_ERRORS.labels(operation=operation).inc()
