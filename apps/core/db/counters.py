"""Per-alias query counters, for tests, the benchmark and the observability metrics."""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import Any

from django.db.backends.base.base import BaseDatabaseWrapper

_lock = threading.Lock()
_counts: dict[str, int] = {}


def query_counts() -> dict[str, int]:
    """Return how many statements each database alias has run in this process."""
    with _lock:
        return dict(_counts)


class _CountingWrapper:
    """Execute wrapper that counts the statements run on one alias."""

    def __init__(self, alias: str) -> None:
        self.alias = alias

    def __call__(
        self,
        execute: Callable[..., Any],
        sql: str,
        params: Any,
        many: bool,
        context: dict[str, Any],
    ) -> Any:
        with _lock:
            _counts[self.alias] = _counts.get(self.alias, 0) + 1
        return execute(sql, params, many, context)


def install_counter(sender: object, connection: BaseDatabaseWrapper, **kwargs: object) -> None:
    """Attach the counter to a connection once (``connection_created`` receiver)."""
    if not any(isinstance(w, _CountingWrapper) for w in connection.execute_wrappers):
        connection.execute_wrappers.append(_CountingWrapper(connection.alias))
