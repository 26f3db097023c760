"""Routing state of one request or task, kept in a context variable.

Never a thread-local: a scope is entered with ``routing_scope()`` and always reset on
exit, so nothing a request decided (its replica, its pin to the primary) survives
into the next request or task on the same thread, even when the view raised.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from dataclasses import dataclass


@dataclass
class RoutingState:
    """What the router knows about the current request or task."""

    # Lowest primary WAL position the reads must see (from the client or a task header).
    read_after: int | None = None
    # Set once the scope wrote: its later reads stay on the primary.
    wrote: bool = False
    # A write happened since ``read_after`` was last brought up to date.
    lsn_stale: bool = False
    # Read from the primary for the rest of the scope (a replica failed, or no replica
    # had caught up with ``read_after``).
    pinned_primary: bool = False
    # The replica chosen for this scope's reads: one per scope, for consistent pages.
    replica: str | None = None
    # The user the scope acts for: its writes are remembered under this id (sticking).
    user_id: int | None = None


_state: ContextVar[RoutingState | None] = ContextVar("db_routing_state", default=None)


def current_state() -> RoutingState | None:
    """Return the routing state of the current scope, or None outside any scope."""
    return _state.get()


@contextmanager
def routing_scope(read_after: int | None = None) -> Iterator[RoutingState]:
    """Open a routing scope for one request or task; reset it on exit, whatever happens."""
    state = RoutingState(read_after=read_after)
    token = _state.set(state)
    try:
        yield state
    finally:
        _state.reset(token)


def enter_scope(read_after: int | None = None) -> tuple[RoutingState, object]:
    """Open a scope where a ``with`` block cannot span it (task pre/post-run signals).

    Return the state and the token that ``exit_scope`` needs.
    """
    state = RoutingState(read_after=read_after)
    return state, _state.set(state)


def exit_scope(token: object) -> None:
    """Close a scope opened by ``enter_scope``."""
    _state.reset(token)  # type: ignore[arg-type]  # the token enter_scope returned


@contextmanager
def bookkeeping_write() -> Iterator[None]:
    """Write inside the block what no later read of the client depends on (last-seen times).

    Such a write neither sends the scope's later reads to the primary nor counts as the
    user's write for read-your-writes (``sticking``): a user would otherwise read the
    primary for a while after every request that refreshed a timestamp.
    """
    state = current_state()
    if state is None:
        yield
        return
    wrote, lsn_stale = state.wrote, state.lsn_stale
    try:
        yield
    finally:
        state.wrote, state.lsn_stale = wrote, lsn_stale
