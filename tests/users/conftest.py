"""Fixtures of the users tests: tiered caches standing for this and other processes."""

from __future__ import annotations

from collections.abc import Callable, Iterator

import pytest

from apps.core.cache import TieredCache, use_tiered_cache
from tests.core.cache.nodes import node_factory
from tests.users.nodes import watched


@pytest.fixture
def make_node() -> Iterator[Callable[..., TieredCache]]:
    """Return a factory of tiered caches with their own L1, closed after the test."""
    yield from node_factory()


@pytest.fixture
def here(make_node: Callable[..., TieredCache]) -> Iterator[TieredCache]:
    """Return this process's tiered cache: a fresh one, installed as the default."""
    cache = watched(make_node())
    with use_tiered_cache(cache):
        yield cache


@pytest.fixture
def there(make_node: Callable[..., TieredCache]) -> TieredCache:
    """Return another process's tiered cache (its own L1 and subscription)."""
    return watched(make_node())
