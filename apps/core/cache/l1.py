"""A small bounded in-process cache (L1) in front of Redis.

Entries live at most a few seconds: the TTL is a backstop for an invalidation message
that never arrived, not the main way entries leave. Every drop (one key or all) advances
an epoch; a fill that started before a drop cannot store what it read (``set`` takes
the epoch the caller saw before reading Redis), so a value read just before its
invalidation message never lands in L1 after the message.
"""

from __future__ import annotations

import threading
import time
from collections import OrderedDict
from typing import Generic, TypeVar

V = TypeVar("V")


class L1Cache(Generic[V]):
    """A thread-safe LRU of at most ``max_entries`` values, each kept at most ``ttl`` s."""

    def __init__(self, *, max_entries: int, ttl: float) -> None:
        self.max_entries = max(0, max_entries)
        self.ttl = ttl
        self._entries: OrderedDict[str, tuple[float, V]] = OrderedDict()
        self._lock = threading.Lock()
        self._epoch = 0
        # Notified after every drop, for ``wait_absent``; never taken on the read path.
        self._dropped = threading.Condition()

    @property
    def enabled(self) -> bool:
        """Return whether this cache stores anything at all."""
        return self.max_entries > 0 and self.ttl > 0

    def epoch(self) -> int:
        """Return the drop counter; pass it to ``set`` to refuse fills older than a drop."""
        return self._epoch

    def get(self, key: str) -> V | None:
        """Return the live value for ``key``, or None."""
        with self._lock:
            item = self._entries.get(key)
            if item is None:
                return None
            expires, value = item
            if expires <= time.monotonic():
                del self._entries[key]
                return None
            self._entries.move_to_end(key)
            return value

    def set(self, key: str, value: V, *, epoch: int, ttl: float | None = None) -> bool:
        """Store ``value`` unless anything was dropped since ``epoch``; return whether stored."""
        if not self.enabled:
            return False
        lifetime = self.ttl if ttl is None else min(self.ttl, ttl)
        if lifetime <= 0:
            return False
        with self._lock:
            if self._epoch != epoch:
                return False
            self._entries[key] = (time.monotonic() + lifetime, value)
            self._entries.move_to_end(key)
            while len(self._entries) > self.max_entries:
                self._entries.popitem(last=False)
            return True

    def delete(self, key: str) -> None:
        """Drop ``key`` and refuse every fill that began before now."""
        with self._lock:
            self._epoch += 1
            self._entries.pop(key, None)
        self._notify_drop()

    def clear(self) -> None:
        """Drop everything and refuse every fill that began before now."""
        with self._lock:
            self._epoch += 1
            self._entries.clear()
        self._notify_drop()

    def wait_absent(self, key: str, timeout: float) -> bool:
        """Wait up to ``timeout`` seconds until ``key`` is not held; return whether it is not."""
        with self._dropped:
            return self._dropped.wait_for(lambda: key not in self, timeout)

    def _notify_drop(self) -> None:
        with self._dropped:
            self._dropped.notify_all()

    def __len__(self) -> int:
        with self._lock:
            return len(self._entries)

    def __contains__(self, key: object) -> bool:
        return isinstance(key, str) and self.get(key) is not None
