"""Fixtures of the users tests."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from apps.core.cache import TieredCache, use_tiered_cache
from tests.core.cache.nodes import listening, node_factory


@pytest.fixture
def node() -> Iterator[TieredCache]:
    """Install a fresh tiered cache whose L1 is usable (its subscription is live)."""
    for make in node_factory():
        cache = listening(make())
        with use_tiered_cache(cache):
            yield cache
