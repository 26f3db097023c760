"""The read-through accessor: L1 (this process) → Redis → the database.

Why a cached value can never be older than the last committed invalidation:

- Invalidation runs on commit (see ``invalidate_on_commit``), deletes the value *and*
  the fill lease in one Lua script, and broadcasts on ``cache:invalidate``.
- A fill needs the lease, taken *before* the database read; the fill script stores only
  while the lease still holds the filler's token. A fill that read the old row before a
  commit is refused, because the invalidation after that commit deleted its lease.
- L1 refuses a value read before any drop that happened since (see ``L1Cache``), and is
  consulted only while this process's subscription is live.
- An invalidation Redis missed (unreachable at commit, or the process died first) is
  not lost: ``invalidate_on_commit`` records it in the write's own transaction
  (``PendingInvalidation``) and deletes the record only once Redis has it (behind
  Sentinel: once a replica has it too, so a failover cannot undo it). A process
  that may have missed one (a Redis error of its own, its subscription dropped, or just
  started) replays every record before it reads Redis again, and its listener does so
  as soon as Redis answers it; the Celery beat sweep is the backstop (``pending``).

The lease is also the single flight: one filler per key across every process, the others
poll for its value; if the holder dies the lease expires and the next caller fills.
Inside one process, concurrent misses on a key wait for one thread.
"""

from __future__ import annotations

import hashlib
import json
import logging
import math
import random
import secrets
import threading
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any, Protocol, cast

from redis import Redis
from redis.cluster import RedisCluster
from redis.commands.core import Script

from apps.core.breaker import CircuitBreaker
from apps.core.cache import scripts
from apps.core.cache.config import CacheConfig
from apps.core.cache.l1 import L1Cache
from apps.core.cache.listener import InvalidationListener
from apps.core.cache.metrics import (
    CACHE_FILLS_REJECTED,
    CACHE_INVALIDATIONS_REPLAYED,
    count_error,
    count_request,
)
from apps.core.redis_cluster import REDIS_ERRORS

logger = logging.getLogger(__name__)

Loader = Callable[[], Any]


class PendingLog(Protocol):
    """Where invalidations Redis may have missed are kept (``pending.PendingInvalidationLog``)."""

    def apply(self, cache: TieredCache) -> int:
        """Replay every recorded invalidation through ``cache``; return how many."""

    def apply_in_thread(self, cache: TieredCache) -> int:
        """Like ``apply``, from a background thread (which must release what it holds)."""


@dataclass(frozen=True)
class CachedValue:
    """A cached JSON document, its entity tag, and what early refresh needs to know."""

    data: Any
    etag: str
    expires_at: float
    compute_seconds: float


def make_etag(data: Any) -> str:
    """Return a strong entity tag for a JSON document (equal documents, equal tags)."""
    canonical = json.dumps(data, sort_keys=True, separators=(",", ":"), default=str)
    return f'"{hashlib.sha256(canonical.encode()).hexdigest()[:32]}"'


def encode_value(value: CachedValue) -> str:
    """Return the JSON stored in Redis for ``value`` (without the generation prefix)."""
    body = {"d": value.data, "e": value.etag, "x": value.expires_at, "c": value.compute_seconds}
    return json.dumps(body, separators=(",", ":"))


def decode_value(raw: bytes) -> CachedValue:
    """Return the value stored by ``encode_value``."""
    body = json.loads(raw)
    return CachedValue(body["d"], body["e"], float(body["x"]), float(body["c"]))


def _default_rng() -> float:
    # XFetch needs a uniform draw in (0, 1]; nothing here is security-sensitive.
    return 1.0 - random.random()  # noqa: S311 -- jitter for early refresh, not a secret


class _Flight:
    def __init__(self) -> None:
        self.done = threading.Event()
        self.result: tuple[CachedValue | None, bool] = (None, False)
        self.error: BaseException | None = None


class TieredCache:
    """L1 + Redis read-through cache with leases, early refresh and fail-open reads.

    ``client`` is None when no Redis is configured: reads then go to the database. On a
    Redis Cluster (a ``RedisCluster`` client) every key of one logical key shares a hash
    tag, so each script touches one slot, and the generation is kept per logical key.
    """

    def __init__(
        self,
        client: Redis | RedisCluster | None,
        config: CacheConfig,
        *,
        rng: Callable[[], float] = _default_rng,
        pending: PendingLog | None = None,
    ) -> None:
        self.config = config
        self.client = client
        self.clustered = isinstance(client, RedisCluster)
        self._pending = pending
        self.l1: L1Cache[CachedValue] = L1Cache(
            max_entries=config.l1_max_entries, ttl=config.l1_ttl
        )
        self._rng = rng
        self._flights: dict[str, _Flight] = {}
        self._flights_lock = threading.Lock()
        # Open after a Redis error: reads go straight to the database until it closes.
        self.redis_breaker = CircuitBreaker(
            "redis cache", reset_seconds=config.retry_after_error_seconds
        )
        # Times this process may have missed an invalidation (a Redis error of its own,
        # its subscription dropped) and how many of those the last replay covered. It
        # starts one behind: a new process cannot know what its predecessors missed.
        self._gaps = 1
        self._replayed_gaps = 0
        self._gaps_lock = threading.Lock()
        self._replay_lock = threading.Lock()  # one replay at a time; readers wait for it
        self._listener: InvalidationListener | None = None
        self._listener_lock = threading.Lock()
        self._scripts: dict[str, Script] = {}
        if client is not None:
            for name in ("ACQUIRE_LEASE", "FILL", "RELEASE", "INVALIDATE"):
                self._scripts[name] = client.register_script(getattr(scripts, name))

    # --- keys ---------------------------------------------------------------------------

    def redis_key(self, key: str) -> str:
        """Return the Redis key holding the value of logical key ``key``.

        On a cluster the logical key is the hash tag: the value, its lease, its
        invalidation time and its generation all live in one slot.
        """
        if self.clustered:
            return f"{self.config.prefix}{{{key}}}"
        return f"{self.config.prefix}{key}"

    @property
    def generation_key(self) -> str:
        """Return the Redis key of the generation counter (one Redis server)."""
        return f"{self.config.prefix}gen"

    def generation_key_of(self, key: str) -> str:
        """Return the generation key that guards ``key``: shared, or its own on a cluster.

        A cluster node that restarts empty or a failover that loses writes drops the
        generation with the values of the same slot, so the check is as strong per slot
        as the shared counter is on one server.
        """
        if self.clustered:
            return self.redis_key(key) + ":gen"
        return self.generation_key

    # --- reads --------------------------------------------------------------------------

    def get(self, key: str, loader: Loader, *, ttl: int) -> CachedValue | None:
        """Return the value of ``key`` through L1 and Redis, computing it on a miss.

        ``loader`` reads the database and returns a JSON-serializable document, or None
        when there is nothing (not cached). Redis failures fall through to ``loader``.
        """
        use_l1 = self._l1_usable()
        if use_l1:
            hit = self.l1.get(key)
            if hit is not None:
                count_request("l1")
                return hit
        epoch = self.l1.epoch()
        value, shareable = self._single_flight(key, lambda: self._read_shared(key, loader, ttl))
        if value is not None and shareable and use_l1:
            self.l1.set(key, value, epoch=epoch, ttl=value.expires_at - time.time())
        return value

    def peek(self, key: str) -> CachedValue | None:
        """Return the value of ``key`` if this process's L1 holds it, without reading on.

        A hit is counted as ``get`` counts it; a miss is not counted (the caller goes on
        to ``get``, which counts where the value came from). Only a usable L1 answers:
        the same rule as ``get``, so a peek is never staler than a read.
        """
        if not self._l1_usable():
            return None
        hit = self.l1.get(key)
        if hit is not None:
            count_request("l1")
        return hit

    def _l1_usable(self) -> bool:
        if not self.l1.enabled or self.client is None or self.redis_breaker.is_open:
            return False
        listener = self._ensure_listener()
        return listener is not None and listener.healthy

    def _single_flight(
        self, key: str, compute: Callable[[], tuple[CachedValue | None, bool]]
    ) -> tuple[CachedValue | None, bool]:
        with self._flights_lock:
            flight = self._flights.get(key)
            leader = flight is None
            if flight is None:
                flight = self._flights[key] = _Flight()
        if not leader:
            if flight.done.wait(self.config.wait_seconds):
                if flight.error is not None:
                    raise flight.error
                return flight.result
            return compute()
        try:
            flight.result = compute()
        except BaseException as exc:
            flight.error = exc
            raise
        finally:
            with self._flights_lock:
                self._flights.pop(key, None)
            flight.done.set()
        return flight.result

    def _read_shared(self, key: str, loader: Loader, ttl: int) -> tuple[CachedValue | None, bool]:
        client = self._usable_client()
        if client is None:
            return self._load_uncached(loader)
        deadline = time.monotonic() + self.config.wait_seconds
        pause = 0.002
        while True:
            try:
                current = self._read_redis(client, key)
                if current is not None and not self._refresh_early(current):
                    count_request("redis")
                    return current, True
                lease = self._acquire_lease(client, key)
            except REDIS_ERRORS:
                self._failed("read")
                return self._load_uncached(loader)
            self.redis_breaker.succeeded()
            if lease is not None:
                return self._fill(client, key, lease, loader, ttl)
            if current is not None:
                # Someone else is refreshing early; the current value is still valid.
                count_request("redis")
                return current, True
            if time.monotonic() >= deadline:
                return self._load_uncached(loader)
            time.sleep(pause)
            pause = min(pause * 2, 0.05)

    def _read_redis(self, client: Redis | RedisCluster, key: str) -> CachedValue | None:
        generation, raw = cast(
            "list[bytes | None]",
            client.mget([self.generation_key_of(key), self.redis_key(key)]),
        )
        if not generation or not raw:
            return None
        prefix = generation + b"|"
        if not raw.startswith(prefix):
            return None
        return decode_value(raw[len(prefix) :])

    def _refresh_early(self, value: CachedValue) -> bool:
        """Return whether to recompute now (XFetch: Vattani et al., VLDB 2015).

        The chance grows as expiry nears and with how long the value took to compute,
        so a hot key is usually refreshed by one caller before it expires for all.
        """
        if value.compute_seconds <= 0 or self.config.early_refresh_beta <= 0:
            return False
        gap = -value.compute_seconds * self.config.early_refresh_beta * math.log(self._rng())
        return time.time() + gap >= value.expires_at

    def _acquire_lease(self, client: Redis | RedisCluster, key: str) -> tuple[str, bytes] | None:
        token = secrets.token_hex(8)
        lease_ms = int(self.config.lease_seconds * 1000)
        acquired, generation = self._scripts["ACQUIRE_LEASE"](
            keys=[self.generation_key_of(key), self.redis_key(key) + ":lease"],
            args=[token, lease_ms],
            client=client,
        )
        return (token, generation) if acquired else None

    def _fill(
        self,
        client: Redis | RedisCluster,
        key: str,
        lease: tuple[str, bytes],
        loader: Loader,
        ttl: int,
    ) -> tuple[CachedValue | None, bool]:
        token, generation = lease
        lease_key = self.redis_key(key) + ":lease"
        started = time.perf_counter()
        data = loader()
        elapsed = time.perf_counter() - started
        count_request("database")
        try:
            if data is None:
                self._scripts["RELEASE"](keys=[lease_key], args=[token], client=client)
                return None, False
            value = CachedValue(data, make_etag(data), time.time() + ttl, elapsed)
            stored = self._scripts["FILL"](
                keys=[self.generation_key_of(key), lease_key, self.redis_key(key)],
                args=[token, generation, encode_value(value), ttl],
                client=client,
            )
        except REDIS_ERRORS:
            self._failed("fill")
            return (None, False) if data is None else (value, False)
        if not stored:
            CACHE_FILLS_REJECTED.inc()
        return value, bool(stored)

    def _load_uncached(self, loader: Loader) -> tuple[CachedValue | None, bool]:
        started = time.perf_counter()
        data = loader()
        count_request("database")
        if data is None:
            return None, False
        elapsed = time.perf_counter() - started
        return CachedValue(data, make_etag(data), time.time(), elapsed), False

    # --- invalidation -------------------------------------------------------------------

    def invalidate(self, kind: str, ids: Iterable[int | str]) -> bool:
        """Drop ``kind:id`` for every id from L1 and Redis, and broadcast the drops.

        Call only after the change committed (``invalidate_on_commit``). Return whether
        Redis has the drops; when it could not be reached, the caller's record of the
        invalidation (``PendingInvalidation``) is what replays it.
        """
        idents = list(ids)
        for ident in idents:
            self.l1.delete(f"{kind}:{ident}")
        if self.client is None or not idents:
            return True
        if self.redis_breaker.is_open:
            self._missed()
            return False
        try:
            replicated = self._invalidate_in_redis(self.client, [(kind, idents)])
        except REDIS_ERRORS:
            self._failed("invalidate")
            return False
        # Dropped on the master but not yet on a replica: a failover now would bring the
        # entry back, so the record stays for the replay.
        return replicated

    def replay(self, invalidations: list[tuple[str, list[int | str]]]) -> None:
        """Drop and broadcast recorded invalidations in one round trip; raise RedisError.

        The drops are idempotent, so a record replayed twice (by two processes, or
        after its own commit hook got through) does no harm.
        """
        for kind, idents in invalidations:
            for ident in idents:
                self.l1.delete(f"{kind}:{ident}")
        if self.client is not None and invalidations:
            self._invalidate_in_redis(self.client, invalidations)
            CACHE_INVALIDATIONS_REPLAYED.inc(len(invalidations))

    def _invalidate_in_redis(
        self, client: Redis | RedisCluster, invalidations: list[tuple[str, list[int | str]]]
    ) -> bool:
        """Drop and broadcast in one pipeline (on a cluster, one request per master); return
        whether the replicas asked for (``replicas_to_confirm``) confirmed it in time (WAIT,
        in the same pipeline; never on a cluster, where WAIT cannot follow the pipeline).

        The script publishes with plain PUBLISH, which a cluster forwards to every node:
        the drop and its broadcast stay one atomic step on the key's own node. (A shard
        channel could not be published from a script whose keys are in another slot.)
        """
        pipe = client.pipeline(transaction=False)
        for kind, idents in invalidations:
            for ident in idents:
                key = self.redis_key(f"{kind}:{ident}")
                message = json.dumps({"type": kind, "id": ident})
                keys = [key, key + ":lease", key + ":inv"]
                args: list[str | int] = [
                    message,
                    self.config.channel,
                    self.config.invalidation_memory_seconds,
                ]
                if self.clustered:
                    # EVAL, not EVALSHA: a cluster pipeline neither takes redis-py's
                    # scripts nor loads one a promoted replica's empty cache lacks.
                    pipe.execute_command("EVAL", scripts.INVALIDATE, len(keys), *keys, *args)
                else:
                    self._scripts["INVALIDATE"](keys=keys, args=args, client=pipe)
        wanted = self.config.replicas_to_confirm
        if wanted and not self.clustered:
            pipe.wait(wanted, self.config.replica_confirm_ms)
        replies = pipe.execute()
        return not wanted or self.clustered or int(replies[-1]) >= wanted

    # --- Redis health -------------------------------------------------------------------

    def _usable_client(self) -> Redis | RedisCluster | None:
        """Return the Redis client unless Redis failed just now or may hold stale entries.

        After a gap (see ``_gaps``) Redis is read only once the recorded invalidations
        are replayed: an entry a missed invalidation left behind is gone before any
        read of this process can find it.
        """
        if self.client is None or self.redis_breaker.is_open:
            return None
        if not self._replay_pending(in_thread=False):
            return None
        return self.client

    def _replay_pending(self, *, in_thread: bool) -> bool:
        """Replay recorded invalidations if this process may have missed one.

        Return whether Redis may be read: false when the replay failed (Redis or the
        database did not answer), so the caller reads the database instead.
        """
        if self._pending is None or self._replayed_gaps == self._gaps:
            return True
        with self._replay_lock:
            gaps = self._gaps
            if self._replayed_gaps == gaps:
                return True
            try:
                if in_thread:
                    self._pending.apply_in_thread(self)
                else:
                    self._pending.apply(self)
            except REDIS_ERRORS:
                self._failed("replay")
                return False
            except Exception:
                # The database did not answer: without the records, Redis is not trusted.
                logger.warning("Could not read pending cache invalidations", exc_info=True)
                count_error("replay")
                return False
            self._replayed_gaps = gaps
        self.redis_breaker.succeeded()
        return True

    def _gap(self) -> None:
        """Note that an invalidation may have been missed since the last replay."""
        with self._gaps_lock:
            self._gaps += 1

    def _redis_answered(self) -> None:
        # Called by the listener whenever Redis answers it: the first process to see
        # Redis back replays the records, without waiting for a request.
        if self._replayed_gaps != self._gaps:
            self._replay_pending(in_thread=True)

    def _missed(self) -> None:
        """Note a gap, and have the listener find out soon whether Redis is back."""
        self._gap()
        if self._listener is not None:
            self._listener.ping_soon()

    def _failed(self, operation: str) -> None:
        count_error(operation)
        self._missed()
        self.redis_breaker.failed()
        self.l1.clear()

    # --- lifecycle ----------------------------------------------------------------------

    def _ensure_listener(self) -> InvalidationListener | None:
        if self._listener is not None or self.client is None:
            return self._listener
        with self._listener_lock:
            if self._listener is None:
                listener = InvalidationListener(
                    client=self.client,
                    channel=self.config.channel,
                    on_key=self.l1.delete,
                    on_flush=self.l1.clear,
                    on_lost=self._gap,
                    on_answer=self._redis_answered,
                )
                listener.start()
                self._listener = listener
        return self._listener

    @property
    def listener(self) -> InvalidationListener | None:
        """Return the invalidation listener, starting it if needed."""
        return self._ensure_listener()

    def close(self) -> None:
        """Stop the listener and drop L1."""
        if self._listener is not None:
            self._listener.stop()
            self._listener = None
        self.l1.clear()
