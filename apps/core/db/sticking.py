"""Sticking: each authenticated user's last write position, seen by every process.

After a request or task acting for a user has written, the primary's WAL position is
stored under the user's id (GitLab's load balancer calls this sticking). A later
request of that user, from any client and any process, raises its read-after LSN to
it, so the router reads the replica it chooses only if that replica has replayed past
it. The check is made against the replica chosen, never "some replica caught up".

The position only moves forward: one Lua script keeps the larger of the stored and the
new one, and nothing deletes it; it expires DATABASE_STICKING_SECONDS after the last
write. Where the cache is not Redis, the positions are kept per process:
read-your-writes then holds within one process only.

While Redis is unreachable (or failed moments ago: the breaker) the user's position is
unknown. The read goes to the primary while the fallback budget lasts. Past it, the
read must neither be stale nor be refused: it takes the primary's current WAL position
as its read-after LSN. That position is at or past every write the user committed
before this request, so the router reads the chosen replica only if it has replayed
past it, and otherwise the primary, as for any client token the replica has not yet
reached. The primary then answers one short statement per such read, rather than the
read itself whenever the replica keeps up.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager

from django.conf import settings
from redis import Redis, RedisError
from redis.cluster import RedisCluster
from redis.exceptions import RedisClusterException

from apps.core.breaker import CircuitBreaker, CircuitOpen
from apps.core.db.health import fallback_budget, monitor
from apps.core.db.lsn import primary_insert_lsn, settle_read_after
from apps.core.db.state import RoutingState, current_state
from apps.core.db.topology import live_replicas
from apps.core.forks import ProcessLocal
from apps.core.redis_cluster import REDIS_ERRORS

logger = logging.getLogger(__name__)

KEY_PREFIX = "hs:stick:user:"
# A position is stored as 20 decimal digits; Lua compares the two 10-digit halves as
# numbers (exact in a double, unlike the whole 64-bit LSN, and free of locale order).
_WIDTH = 20
# KEYS: the user's key.  ARGV: position, ttl s.  Returns the position now stored.
STICK = """
local function later(a, b)
  local ah, bh = tonumber(string.sub(a, 1, 10)), tonumber(string.sub(b, 1, 10))
  if ah ~= bh then return ah > bh end
  return tonumber(string.sub(a, 11)) > tonumber(string.sub(b, 11))
end
local old = redis.call('GET', KEYS[1])
if old and not later(ARGV[1], old) then
  redis.call('EXPIRE', KEYS[1], ARGV[2])
  return old
end
redis.call('SET', KEYS[1], ARGV[1], 'EX', ARGV[2])
return ARGV[1]
"""


class StickingUnavailable(Exception):
    """The store of write positions did not answer; the position is unknown."""


class RedisPositions:
    """Write positions in Redis, shared by every process."""

    def __init__(self, client: Redis | RedisCluster) -> None:
        self.client = client
        self._stick = client.register_script(STICK)
        # Open after a Redis error: no call for a moment, the user reads the primary.
        self.breaker = CircuitBreaker(
            "sticking store", reset_seconds=settings.CACHE_REDIS_RETRY_SECONDS
        )

    def stick(self, user_id: int, lsn: int) -> int:
        """Store ``lsn`` for ``user_id`` unless a later one is stored; return the stored one."""
        try:
            with self.breaker.guard(*REDIS_ERRORS):
                stored = self._stick(
                    keys=[f"{KEY_PREFIX}{user_id}"],
                    args=[f"{lsn:0{_WIDTH}d}", settings.DATABASE_STICKING_SECONDS],
                )
        except (RedisError, RedisClusterException, CircuitOpen) as exc:
            raise StickingUnavailable(str(exc)) from exc
        return int(stored)

    def position(self, user_id: int) -> int | None:
        """Return the last write position stored for ``user_id`` (None: none live)."""
        try:
            with self.breaker.guard(*REDIS_ERRORS):
                raw = self.client.get(f"{KEY_PREFIX}{user_id}")
        except (RedisError, RedisClusterException, CircuitOpen) as exc:
            raise StickingUnavailable(str(exc)) from exc
        return int(raw) if raw is not None else None


class LocalPositions:
    """Write positions of this process only (no Redis configured)."""

    # Expired entries are swept once the dictionary holds this many.
    SWEEP_AT = 10_000

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._positions: dict[int, tuple[int, float]] = {}

    def stick(self, user_id: int, lsn: int) -> int:
        """Store ``lsn`` for ``user_id`` unless a later one is stored; return the stored one."""
        now = time.monotonic()
        expires = now + settings.DATABASE_STICKING_SECONDS
        with self._lock:
            old = self._positions.get(user_id)
            stored = lsn if old is None or old[1] <= now else max(lsn, old[0])
            self._positions[user_id] = (stored, expires)
            if len(self._positions) >= self.SWEEP_AT:
                self._positions = {u: e for u, e in self._positions.items() if e[1] > now}
        return stored

    def position(self, user_id: int) -> int | None:
        """Return the last write position stored for ``user_id`` (None: none live)."""
        entry = self._positions.get(user_id)
        return entry[0] if entry is not None and entry[1] > time.monotonic() else None


Positions = RedisPositions | LocalPositions


def _new_positions() -> Positions:
    from apps.core.cache import redis_client

    client = redis_client()
    return RedisPositions(client) if client is not None else LocalPositions()


_positions: ProcessLocal[Positions] = ProcessLocal(_new_positions)


def positions() -> Positions:
    """Return this process's store of write positions."""
    return _positions.get()


@contextmanager
def use_positions(store: Positions) -> Iterator[Positions]:
    """Make ``store`` this process's store of write positions inside the block (tests)."""
    previous = _positions.set(store)
    try:
        yield store
    finally:
        _positions.set(previous)


def follow_user(user_id: int) -> bool:
    """Make the current scope's reads see every write of ``user_id``, from any client.

    Call it once the scope's user is known (authentication). Return True when the
    reads already made in the scope came from a replica that may lack the user's
    writes: the caller reads again what it loaded (the user row), now routed anew.
    When the position is unknown (the store is down), see the module's docstring.
    """
    state = current_state()
    if state is None or not live_replicas():
        return False
    state.user_id = user_id
    if state.wrote or state.pinned_primary:
        return False
    try:
        position = positions().position(user_id)
    except StickingUnavailable as exc:
        logger.warning("Sticking store unavailable, user %s: %s", user_id, exc)
        if fallback_budget.take():
            return _pin_primary(state)
        position = primary_insert_lsn()
    if position is None:
        return False
    return _read_after(state, position)


def _read_after(state: RoutingState, position: int) -> bool:
    state.read_after = position if state.read_after is None else max(state.read_after, position)
    if state.replica is not None and not monitor.usable(state.replica, state.read_after):
        state.replica = None
        return True
    return False


def _pin_primary(state: RoutingState) -> bool:
    read_a_replica = state.replica is not None
    state.replica = None
    state.pinned_primary = True
    return read_a_replica


def act_for_user(user_id: int) -> None:
    """Record the current scope's writes under ``user_id`` when it ends (tasks, services)."""
    state = current_state()
    if state is not None:
        state.user_id = user_id


def remember_writes(state: RoutingState) -> int | None:
    """At the end of a scope: store its write position under its user; return the position.

    The position is read once the scope's writes have committed. The client keeps its
    read-after token either way, so a store that is down loses only this copy.
    """
    lsn = settle_read_after(state) if state.wrote else None
    if lsn is None or state.user_id is None:
        return lsn
    try:
        positions().stick(state.user_id, lsn)
    except StickingUnavailable as exc:
        logger.warning("Sticking store unavailable, user %s: %s", state.user_id, exc)
    return lsn
