"""Where counters live: Redis (shared by every process) or process memory (embedded default).

Each backend answers one question per algorithm, "may this request pass?", as one
atomic step. The Redis backend fails fast: short socket timeouts, no retries, and after
a failure it stops trying for a second, so an outage adds almost no latency.
"""

from __future__ import annotations

import itertools
import math
import os
import secrets
import socket
import threading
import time
from collections import deque
from collections.abc import Callable
from functools import lru_cache
from typing import NamedTuple, Protocol

import redis
from opentelemetry.instrumentation.redis import RedisInstrumentor
from redis.backoff import NoBackoff
from redis.exceptions import NoScriptError, ResponseError
from redis.retry import Retry

from apps.ratelimit import scripts

# How long the Redis backend stops trying after a failure.
BREAKER_SECONDS = 1.0


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

    def start_gcra(
        self, key: str, interval_us: int, burst: int, now_us: int | None
    ) -> Callable[[], Outcome]: ...

    def start_sliding_window(
        self, key: str, window_us: int, limit: int, now_us: int | None
    ) -> Callable[[], Outcome]: ...

    def sliding_window(
        self, key: str, window_us: int, limit: int, now_us: int | None
    ) -> Outcome: ...


class RedisBackend:
    """Decide with one EVALSHA per request; the scripts are loaded once per connection pool."""

    def __init__(self, url: str, timeout_ms: int) -> None:
        timeout = timeout_ms / 1000
        self.client = redis.Redis.from_url(
            url,
            socket_timeout=timeout,
            socket_connect_timeout=timeout,
            retry=Retry(NoBackoff(), 0),
            health_check_interval=0,
        )
        # Script objects send EVALSHA and load the script only when Redis lacks it.
        self._gcra = self.client.register_script(scripts.GCRA)
        self._sliding = self.client.register_script(scripts.SLIDING_WINDOW)
        # Each script's command up to its arguments, encoded once: EVALSHA <sha> 1 <key>
        # takes four bulk strings, then come the script's arguments.
        self._gcra_head = _evalsha_head(self._gcra.sha, arguments=3)
        self._sliding_head = _evalsha_head(self._sliding.sha, arguments=4)
        self._down_until = 0.0
        # One connection per thread (a sync worker has one), used by `_start`.
        self._local = threading.local()

    def gcra(self, key: str, interval_us: int, burst: int, now_us: int | None) -> Outcome:
        """Run the GCRA script for ``key``."""
        return self.start_gcra(key, interval_us, burst, now_us)()

    def sliding_window(self, key: str, window_us: int, limit: int, now_us: int | None) -> Outcome:
        """Run the sliding-window-log script for ``key``."""
        return self.start_sliding_window(key, window_us, limit, now_us)()

    def start_gcra(
        self, key: str, interval_us: int, burst: int, now_us: int | None
    ) -> Callable[[], Outcome]:
        """Send the GCRA script for ``key``; return the function that reads its answer."""
        args: list[str | int] = [interval_us, burst, _now_arg(now_us)]
        return self._start(self._gcra, self._gcra_head, key, args)

    def start_sliding_window(
        self, key: str, window_us: int, limit: int, now_us: int | None
    ) -> Callable[[], Outcome]:
        """Send the sliding-window script for ``key``; return the function reading its answer."""
        args: list[str | int] = [window_us, limit, _unique_member(), _now_arg(now_us)]
        return self._start(self._sliding, self._sliding_head, key, args)

    def _start(
        self, script: redis.commands.core.Script, head: bytes, key: str, args: list[str | int]
    ) -> Callable[[], Outcome]:
        """Send one EVALSHA on this thread's own connection; return its reader.

        The client's generic path (pool checkout with a readiness poll, argument
        encoding, retry wrapper, instrumentation hooks) costs more CPU than the round
        trip itself, on every API request; one fixed command needs none of it: its head
        is encoded once, and the request goes out in one ``sendall``. The answer is read
        by the returned function, so a caller may do other work while Redis decides.

        Several checks may be in flight on the connection at once (a check started as
        the request arrived, then another policy's): Redis answers in the order it was
        asked, so each reader first takes the answers sent before its own, in order, and
        keeps them for their readers (``_Pipe``). A connection that failed is closed, every
        answer still expected on it fails, and the next check reopens it; a Redis that
        lost the script (a restart) gets it loaded again through the client.
        """
        if time.monotonic() < self._down_until:
            raise StoreUnavailable("Redis failed less than a second ago", breaker_open=True)
        if _redis_traced():
            # Tracing hooks the client's generic path: keep the limit check in the trace.
            try:
                traced = _outcome(script(keys=[key], args=args))
            except redis.RedisError as exc:
                raise self._failed(exc) from exc
            return lambda: traced
        pipe = self._pipe()
        connection = pipe.connection
        try:
            if connection._sock is None:
                # Unannotated in redis-py; it also authenticates and selects the database.
                connection.connect()  # type: ignore[no-untyped-call]
            sock: socket.socket = connection._sock  # type: ignore[assignment]  # connected
            sock.sendall(head + _bulk(key) + b"".join([_bulk(arg) for arg in args]))
        except (OSError, redis.RedisError) as exc:
            failure = self._failed(exc)
            pipe.abandon(failure)
            raise failure from exc
        expected = _Expected()
        pipe.expected.append(expected)

        def finish() -> Outcome:
            while expected.reply is _UNREAD:
                try:
                    reply: object = connection.read_response()
                except ResponseError as exc:
                    # An error answer to one command: the stream is still in step.
                    reply = exc
                except (OSError, redis.RedisError) as exc:
                    pipe.abandon(self._failed(exc))
                    break
                pipe.expected.popleft().reply = reply
            reply = expected.reply
            try:
                if isinstance(reply, StoreUnavailable):
                    raise reply
                if isinstance(reply, NoScriptError):
                    # Not run: run it through the client, which loads it first.
                    reply = script(keys=[key], args=args)
                elif isinstance(reply, ResponseError):
                    raise reply
            except redis.RedisError as exc:
                raise self._failed(exc) from exc
            return _outcome(reply)  # type: ignore[arg-type]  # the scripts' reply shape

        return finish

    def _failed(self, exc: Exception) -> StoreUnavailable:
        self._down_until = time.monotonic() + BREAKER_SECONDS
        return StoreUnavailable(str(exc) or type(exc).__name__)

    def _pipe(self) -> _Pipe:
        local = self._local
        pipe: _Pipe | None = getattr(local, "pipe", None)
        # A connection opened before a fork belongs to the parent: never share its socket.
        if pipe is None or pipe.pid != os.getpid():
            pool = self.client.connection_pool
            pipe = local.pipe = _Pipe(pool.connection_class(**pool.connection_kwargs))
        return pipe


# The value of an expected answer not read yet.
_UNREAD = object()


class _Expected:
    """One answer a reader is waiting for: ``_UNREAD`` until read off the connection."""

    __slots__ = ("reply",)

    def __init__(self) -> None:
        self.reply: object = _UNREAD


class _Pipe:
    """A thread's own connection, and the answers expected on it in the order they come."""

    def __init__(self, connection: redis.connection.AbstractConnection) -> None:
        self.connection = connection
        self.pid = os.getpid()
        self.expected: deque[_Expected] = deque()

    def abandon(self, failure: StoreUnavailable) -> None:
        """Close the connection; every answer still expected on it fails with ``failure``."""
        self.connection.disconnect()  # type: ignore[no-untyped-call]  # unannotated in redis-py
        while self.expected:
            self.expected.popleft().reply = failure


def _outcome(reply: list[int]) -> Outcome:
    allowed, remaining, retry_after, reset_after = reply
    return Outcome(allowed == 1, int(remaining), int(retry_after), int(reset_after))


def _evalsha_head(sha: str, *, arguments: int) -> bytes:
    """Return the encoded start of ``EVALSHA sha 1 <key> <arguments…>``, before the key."""
    return b"*%d\r\n$7\r\nEVALSHA\r\n" % (4 + arguments) + _bulk(sha) + b"$1\r\n1\r\n"


def _bulk(value: str | int) -> bytes:
    """Return ``value`` as a RESP bulk string."""
    data = str(value).encode()
    return b"$%d\r\n%b\r\n" % (len(data), data)


# Sliding-window members: a random tag of this process and a counter, so that every
# request anywhere gets its own member without asking the OS for randomness each time.
_member_tag = ("", 0)
_member_numbers = itertools.count()


def _unique_member() -> str:
    global _member_tag
    tag, pid = _member_tag
    if pid != os.getpid():
        # A forked worker inherits the parent's tag and counter: draw its own.
        tag, pid = _member_tag = (secrets.token_hex(6), os.getpid())
    return f"{tag}{next(_member_numbers):x}"


def _redis_traced() -> bool:
    """Return whether OpenTelemetry instruments redis-py in this process."""
    instrumented: bool = RedisInstrumentor().is_instrumented_by_opentelemetry
    return instrumented


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

    def start_gcra(
        self, key: str, interval_us: int, burst: int, now_us: int | None
    ) -> Callable[[], Outcome]:
        """Decide at once (nothing to wait for); return the function giving the answer."""
        outcome = self.gcra(key, interval_us, burst, now_us)
        return lambda: outcome

    def start_sliding_window(
        self, key: str, window_us: int, limit: int, now_us: int | None
    ) -> Callable[[], Outcome]:
        """Decide at once (nothing to wait for); return the function giving the answer."""
        outcome = self.sliding_window(key, window_us, limit, now_us)
        return lambda: outcome

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


@lru_cache(maxsize=8)
def redis_backend(url: str, timeout_ms: int) -> RedisBackend:
    """Return the process's Redis backend for ``url``, created once."""
    return RedisBackend(url, timeout_ms)


def get_backend(url: str, timeout_ms: int) -> Backend:
    """Return the Redis backend for ``url``, or the in-process one when ``url`` is empty."""
    if not url:
        return _memory
    return redis_backend(url, timeout_ms)
