"""Per-alias query counters, for tests, the benchmark and the ``db_queries_total`` metric."""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import Any

from django.db.backends.base.base import BaseDatabaseWrapper

from apps.core.db.metrics import DB_QUERIES

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
        # Resolved once per connection: ``labels()`` on every statement costs a lookup.
        self._metric = DB_QUERIES.labels(alias=alias)

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
        self._metric.inc()
        return execute(sql, params, many, context)


def install_counter(sender: object, connection: BaseDatabaseWrapper, **kwargs: object) -> None:
    """Attach the counter to a connection once (``connection_created`` receiver).

    The primary's connections also get the raw-write detector (see ``writes``).
    """
    from apps.core.db.writes import RawWriteDetector

    if not any(isinstance(w, _CountingWrapper) for w in connection.execute_wrappers):
        connection.execute_wrappers.append(_CountingWrapper(connection.alias))
    if connection.alias == "default" and not any(
        isinstance(w, RawWriteDetector) for w in connection.execute_wrappers
    ):
        connection.execute_wrappers.append(RawWriteDetector())
