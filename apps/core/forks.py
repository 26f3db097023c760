"""Per-process state that a forked child must not inherit.

A gunicorn or Celery prefork child starts as a copy of its parent: sockets, threads
(gone in the child) and random generators included. State of that kind is held in a
``ProcessLocal``, which makes its value anew in a child on first use, or reset by a
function registered with ``after_fork``. This is the one place that knows about fork.
"""

from __future__ import annotations

import os
import threading
import weakref
from collections.abc import Callable
from typing import Any, Generic, TypeVar

T = TypeVar("T")


def after_fork(reset: Callable[[], None]) -> None:
    """Call ``reset`` in every child process right after a fork."""
    os.register_at_fork(after_in_child=reset)


class ProcessLocal(Generic[T]):
    """A value made once per process by ``factory``, made anew in a forked child."""

    def __init__(self, factory: Callable[[], T]) -> None:
        self._factory = factory
        self._lock = threading.Lock()
        self._value: T | None = None
        _instances.add(self)

    def get(self) -> T:
        """Return this process's value, making it on first use."""
        value = self._value
        if value is None:
            with self._lock:
                value = self._value
                if value is None:
                    value = self._value = self._factory()
        return value

    def set(self, value: T | None) -> T | None:
        """Replace this process's value (None: make it anew on next use); return the old."""
        with self._lock:
            previous, self._value = self._value, value
        return previous

    def _forget(self) -> None:
        # In the child only one thread runs: the lock may be held by a thread that is
        # gone, so it is replaced, not acquired.
        self._lock = threading.Lock()
        self._value = None


_instances: weakref.WeakSet[ProcessLocal[Any]] = weakref.WeakSet()


def _forget_all() -> None:
    for local in list(_instances):
        local._forget()


after_fork(_forget_all)
