"""Where counters live: Redis (shared by every process) or process memory (embedded default).

Each backend answers one question per algorithm, "may this request pass?", as one
atomic step. The Redis backend runs each decision as one Lua script through redis-py
(``EVALSHA``) and fails fast: short socket timeouts, no retries, and a circuit breaker
that skips Redis for a second after a failure.
"""

from __future__ import annotations

import itertools
import math
import secrets
import threading
import time
from typing import NamedTuple, Protocol

from redis.backoff import NoBackoff
from redis.commands.core import Script
from redis.retry import Retry

from apps.core.breaker import CircuitBreaker, CircuitOpen
from apps.core.forks import ProcessLocal
from apps.core.redis_cluster import REDIS_ERRORS, REDIS_OR_OS_ERRORS
from apps.core.redis_topology import RedisTopology
from apps.ratelimit import scripts


class Outcome(NamedTuple):
    """The store's answer; durations in microseconds."""

    allowed: bool
    remaining: int
    retry_after_us: int
    reset_after_us: int


class StoreUnavailable(Exception):
    """The store could not answer in time; the policy's fail mode decides."""

    def __init__(self, reason: str, *, breaker_open: bool = False) -> None:
        super().__init__(reason)
        # True when the store was not even tried because it failed moments ago.
        self.breaker_open = breaker_open


class Backend(Protocol):
    def gcra(self, key: str, interval_us: int, burst: int, now_us: int | None) -> Outcome: ...

    def sliding_window(
        self, key: str, window_us: int, limit: int, now_us: int | None
    ) -> Outcome: ...


class RedisBackend:
    """Decide with one script call per request, through redis-py's ``Script``.

    ``Script`` sends ``EVALSHA`` and loads the script only when Redis lacks it (a fresh
    or restarted server); redis-py parses replies with hiredis when it is installed.
    """

    def __init__(self, topology: RedisTopology, timeout_ms: int) -> None:
        timeout = timeout_ms / 1000
        # Behind Sentinel each new connection asks where the master is; a failed call
        # drops its connection, so the next one after a failover reaches the new master.
        self.client = topology.client(
            socket_timeout=timeout,
            socket_connect_timeout=timeout,
            retry=Retry(NoBackoff(), 0),
            health_check_interval=0,
        )
        self._gcra = self.client.register_script(scripts.GCRA)
        self._sliding = self.client.register_script(scripts.SLIDING_WINDOW)
        # A second without Redis after a failure: an outage costs one timeout, not one
        # per request.
        self.breaker = CircuitBreaker("rate-limit Redis", reset_seconds=1.0)

    def gcra(self, key: str, interval_us: int, burst: int, now_us: int | None) -> Outcome:
        """Run the GCRA script for ``key``."""
        return self._run(self._gcra, key, [interval_us, burst, _now_arg(now_us)])

    def sliding_window(self, key: str, window_us: int, limit: int, now_us: int | None) -> Outcome:
        """Run the sliding-window-log script for ``key``."""
        return self._run(self._sliding, key, [window_us, limit, _unique_member(), _now_arg(now_us)])

    def _run(self, script: Script, key: str, args: list[str | int]) -> Outcome:
        try:
            with self.breaker.guard(*REDIS_OR_OS_ERRORS):
                reply: list[int] = script(keys=[key], args=args)
        except CircuitOpen as exc:
            raise StoreUnavailable(str(exc), breaker_open=True) from exc
        except REDIS_OR_OS_ERRORS as exc:
            raise StoreUnavailable(str(exc) or type(exc).__name__) from exc
        allowed, remaining, retry_after, reset_after = reply
        return Outcome(allowed == 1, int(remaining), int(retry_after), int(reset_after))


# Sliding-window members: a random tag of this process and a counter, so that every
# request anywhere gets its own member without asking the OS for randomness each time.
# A forked worker draws its own tag.
_member_tag: ProcessLocal[str] = ProcessLocal(lambda: secrets.token_hex(6))
_member_numbers = itertools.count()


def _unique_member() -> str:
    return f"{_member_tag.get()}{next(_member_numbers):x}"


def _now_arg(now_us: int | None) -> str:
    return "" if now_us is None else str(now_us)


class MemoryBackend:
    """The same algorithms in one process, for the embedded default without Redis.

    Counts are per process: under several workers each keeps its own.
    """

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._gcra_tat: dict[str, int] = {}
        self._logs: dict[str, list[int]] = {}
        # When each key's state stops mattering, like a Redis TTL.
        self._expires: dict[str, int] = {}

    def gcra(self, key: str, interval_us: int, burst: int, now_us: int | None) -> Outcome:
        """Apply GCRA to ``key`` under the process lock."""
        now = _clock_us() if now_us is None else now_us
        with self._lock:
            tat = max(self._gcra_tat.get(key, now), now)
            new_tat = tat + interval_us
            allow_at = new_tat - burst * interval_us
            if now < allow_at:
                return Outcome(False, 0, allow_at - now, tat - now)
            self._gcra_tat[key] = new_tat
            self._expires[key] = new_tat
            self._sweep(now)
            return Outcome(True, (now - allow_at) // interval_us, 0, new_tat - now)

    def sliding_window(self, key: str, window_us: int, limit: int, now_us: int | None) -> Outcome:
        """Apply the sliding-window log to ``key`` under the process lock."""
        now = _clock_us() if now_us is None else now_us
        with self._lock:
            log = [t for t in self._logs.get(key, []) if t > now - window_us]
            if len(log) < limit:
                log.append(now)
                self._logs[key] = log
                self._expires[key] = now + window_us
                self._sweep(now)
                return Outcome(True, limit - len(log), 0, window_us)
            self._logs[key] = log
            freeing = sorted(log)[len(log) - limit]
            return Outcome(False, 0, freeing + window_us - now, max(log) + window_us - now)

    def _sweep(self, now: int) -> None:
        # Bounded memory: once the table grows, drop every key whose state has expired.
        if len(self._expires) < 10_000:
            return
        for key in [k for k, expires in self._expires.items() if expires <= now]:
            del self._expires[key]
            self._gcra_tat.pop(key, None)
            self._logs.pop(key, None)


def _clock_us() -> int:
    return math.floor(time.time() * 1_000_000)


_memory = MemoryBackend()


# One Redis backend per topology and timeout in each process; a forked child makes its
# own, with a breaker of its own.
_redis_backends: ProcessLocal[dict[tuple[RedisTopology, int], RedisBackend]] = ProcessLocal(dict)


def redis_backend(topology: RedisTopology, timeout_ms: int) -> RedisBackend:
    """Return this process's Redis backend for ``topology``, created once."""
    backends = _redis_backends.get()
    backend = backends.get((topology, timeout_ms))
    if backend is None:
        try:
            created = RedisBackend(topology, timeout_ms)
        except REDIS_ERRORS as exc:
            # A cluster client learns the slot map as it is made: no node answered.
            raise StoreUnavailable(str(exc) or type(exc).__name__) from exc
        backend = backends.setdefault((topology, timeout_ms), created)
    return backend


def get_backend(topology: RedisTopology | None, timeout_ms: int) -> Backend:
    """Return the Redis backend for ``topology``, or the in-process one when it is None."""
    if topology is None:
        return _memory
    return redis_backend(topology, timeout_ms)
