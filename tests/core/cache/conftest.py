"""Fixtures of the cache tests."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.core.cache.nodes import NodeFactory, node_factory


@pytest.fixture
def make_node() -> Iterator[NodeFactory]:
    """Return a factory of tiered caches with their own L1, closed after the test."""
    yield from node_factory()
