"""An L1 cache a test can wait on, so a test waits for an invalidation, not a clock."""

from __future__ import annotations

import threading
from collections.abc import Callable

import pytest

from apps.core.cache import CachedValue, TieredCache
from apps.core.cache.l1 import L1Cache
from tests.core.cache.nodes import listening


class WatchedL1(L1Cache[CachedValue]):
    """An L1 cache that wakes waiting tests whenever an entry is stored or dropped."""

    def __init__(self, *, max_entries: int, ttl: float) -> None:
        super().__init__(max_entries=max_entries, ttl=ttl)
        self.changed = threading.Condition()

    def set(self, key: str, value: CachedValue, *, epoch: int, ttl: float | None = None) -> bool:
        stored = super().set(key, value, epoch=epoch, ttl=ttl)
        self._notify()
        return stored

    def delete(self, key: str) -> None:
        super().delete(key)
        self._notify()

    def clear(self) -> None:
        super().clear()
        self._notify()

    def wait_until(self, check: Callable[[], bool], timeout: float = 2.0) -> None:
        """Wait until ``check()`` holds, re-checking on every change; fail at the deadline."""
        with self.changed:
            if not self.changed.wait_for(check, timeout):
                pytest.fail("the L1 cache did not reach the expected state in time")

    def wait_dropped(self, key: str, timeout: float = 2.0) -> None:
        """Wait until ``key`` is no longer held (its invalidation arrived)."""
        self.wait_until(lambda: key not in self, timeout)

    def _notify(self) -> None:
        with self.changed:
            self.changed.notify_all()


def watched(node: TieredCache) -> TieredCache:
    """Give ``node`` (not yet listening) an L1 that tests can wait on; return it listening."""
    node.l1 = WatchedL1(max_entries=node.config.l1_max_entries, ttl=node.config.l1_ttl)
    return listening(node)


def watched_l1(node: TieredCache) -> WatchedL1:
    """Return the waitable L1 of a node made by ``watched``."""
    assert isinstance(node.l1, WatchedL1)
    return node.l1
