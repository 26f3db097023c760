"""The database router: writes and transactions on the primary, reads on a replica.

A read goes to a replica only inside a routing scope (a request or a task), outside
any ``atomic()`` block, when the scope has not written, and when the replica is up,
within the lag bound, and has replayed past the scope's read-after LSN. The scope
keeps the replica it first chose, so one page reads one consistent snapshot source.
Reads outside any scope (shell, management commands, migrations) use the primary.
"""

from __future__ import annotations

import threading
from typing import Any

from django.db import connections
from django.db.models import Model

from apps.core.db.errors import ReadCapacityExhausted
from apps.core.db.health import fallback_budget, monitor
from apps.core.db.state import RoutingState, current_state
from apps.core.db.topology import live_replicas

PRIMARY = "default"


class WeightedChooser:
    """Smooth weighted round-robin (as in nginx): exact shares, evenly interleaved."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._current: dict[str, int] = {}

    def choose(self, candidates: list[tuple[str, int]]) -> str:
        """Return the next alias among ``candidates`` (alias, weight), honouring weights."""
        total = sum(weight for _, weight in candidates)
        with self._lock:
            best, best_value = candidates[0][0], None
            for alias, weight in candidates:
                value = self._current.get(alias, 0) + weight
                self._current[alias] = value
                if best_value is None or value > best_value:
                    best, best_value = alias, value
            self._current[best] -= total
        return best


chooser = WeightedChooser()


def choose_read_alias(state: RoutingState) -> str:
    """Pick the alias for the scope's reads and remember it in ``state``.

    Raise ReadCapacityExhausted when no replica is usable and the fallback budget
    for the primary is spent.
    """
    replicas = live_replicas()
    if not replicas:
        return PRIMARY
    monitor.ensure_started()
    eligible = [(a, w) for a, w in replicas if monitor.usable(a, state.read_after)]
    if eligible:
        state.replica = chooser.choose(eligible)
        return state.replica
    state.pinned_primary = True
    # Healthy replicas that merely have not reached this client's token yet: the
    # primary read is the price of read-your-writes, short-lived by nature.
    if state.read_after is not None and any(monitor.usable(a, None) for a, _ in replicas):
        return PRIMARY
    if not fallback_budget.take():
        raise ReadCapacityExhausted()
    return PRIMARY


class ReplicaRouter:
    """Route reads to replicas by WAL position; everything else to the primary."""

    def db_for_read(self, model: type[Model], **hints: Any) -> str:
        state = current_state()
        if state is None or state.wrote or state.pinned_primary:
            return PRIMARY
        if connections[PRIMARY].in_atomic_block:
            return PRIMARY
        if state.replica is not None:
            return state.replica
        return choose_read_alias(state)

    def db_for_write(self, model: type[Model], **hints: Any) -> str:
        state = current_state()
        if state is not None:
            state.wrote = True
            state.lsn_stale = True
        return PRIMARY

    def allow_relation(self, obj1: Model, obj2: Model, **hints: Any) -> bool:
        # Every alias holds the same data; a replica row may relate to a primary row.
        return True

    def allow_migrate(self, db: str, app_label: str, **hints: Any) -> bool | None:
        from django.conf import settings

        if db in settings.DATABASE_REPLICA_WEIGHTS:
            return False
        return None
