"""Helpers of the cache tests: extra tiered caches, each standing for another process."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import replace

from apps.core.cache import CacheConfig, TieredCache, redis_client

# Short leases and waits keep the interleaving tests quick; behaviour is the same.
TEST_CONFIG = CacheConfig(lease_seconds=1.0, wait_seconds=1.5, retry_after_error_seconds=0.2)

NodeFactory = Callable[..., TieredCache]


def node_factory() -> Iterator[NodeFactory]:
    """Return a factory of tiered caches on the suite's Redis, each with its own L1.

    Each stands for one worker process; all are closed at the end of the test.
    """
    nodes: list[TieredCache] = []

    def make(rng: Callable[[], float] | None = None, **overrides: object) -> TieredCache:
        config = replace(TEST_CONFIG, **overrides)  # type: ignore[arg-type]
        node = (
            TieredCache(redis_client(), config)
            if rng is None
            else TieredCache(redis_client(), config, rng=rng)
        )
        nodes.append(node)
        return node

    yield make
    for node in nodes:
        node.close()


def listening(node: TieredCache) -> TieredCache:
    """Return ``node`` once its invalidation subscription is live."""
    listener = node.listener
    assert listener is not None
    assert listener.wait_healthy(5)
    return node
