"""Replica health: replay position, lag, and a circuit breaker per replica alias.

A daemon thread per process probes every live replica on its own connection (never a
request's), so requests read cached figures and never wait on a slow replica. A
replica that refuses connections or errors is marked down at once, by the probe or
by the request that hit the error, and probed again after the retry delay.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, replace
from typing import Any

import psycopg
from django.conf import settings
from django.db import connections

from apps.core.breaker import CircuitBreaker
from apps.core.db.lsn import format_lsn, parse_lsn
from apps.core.db.metrics import record_probe
from apps.core.db.topology import live_replicas
from apps.core.forks import ProcessLocal

logger = logging.getLogger(__name__)

# Lag is 0 while the replica has replayed all it received (an idle primary makes no
# new WAL, so "time since the last replayed commit" alone would grow without lag). After
# a restart the receiver streams again from the start of its segment, behind what was
# already replayed from local WAL: received <= replayed is caught up too, not lag.
PROBE_SQL = """
SELECT CASE WHEN pg_is_in_recovery() THEN pg_last_wal_replay_lsn()
            ELSE pg_current_wal_lsn() END::text,
       CASE WHEN NOT pg_is_in_recovery()
              OR pg_last_wal_receive_lsn() <= pg_last_wal_replay_lsn() THEN 0
            ELSE COALESCE(EXTRACT(EPOCH FROM now() - pg_last_xact_replay_timestamp()), 0)
       END::float8,
       pg_is_in_recovery()
"""


@dataclass(frozen=True)
class ReplicaStatus:
    """The last known state of one replica."""

    alias: str
    healthy: bool = False
    replay_lsn: int | None = None
    lag_seconds: float | None = None
    checked_at: float = 0.0
    # False once the server has been promoted (it no longer replays a primary's WAL).
    in_recovery: bool | None = None


def _conninfo(alias: str) -> dict[str, Any]:
    db = connections.settings[alias]
    timeout_ms = int(settings.DATABASE_REPLICA_PROBE_TIMEOUT_SECONDS * 1000)
    return {
        "dbname": db["NAME"],
        "user": db.get("USER") or None,
        "password": db.get("PASSWORD") or None,
        "host": db.get("HOST") or None,
        "port": str(db["PORT"]) if db.get("PORT") else None,
        "connect_timeout": max(1, timeout_ms // 1000),
        "options": f"-c statement_timeout={timeout_ms}",
        "application_name": "highscale-replica-monitor",
    }


class _Probing:
    """One process's probing: statuses, a breaker and a connection per alias, the thread."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        # Notified after every probe and every mark-down, for ``wait_until``.
        self.changed = threading.Condition(self.lock)
        self.statuses: dict[str, ReplicaStatus] = {}
        self.breakers: dict[str, CircuitBreaker] = {}
        self.conns: dict[str, tuple[tuple[Any, ...], psycopg.Connection[Any]]] = {}
        self.wake = threading.Event()

    def breaker(self, alias: str) -> CircuitBreaker:
        breaker = self.breakers.get(alias)
        if breaker is None:
            with self.lock:
                breaker = self.breakers.setdefault(
                    alias,
                    CircuitBreaker(
                        f"replica {alias}", reset_seconds=settings.DATABASE_REPLICA_RETRY_SECONDS
                    ),
                )
        return breaker


class ReplicaMonitor:
    """Probe live replicas on an interval and answer which may serve a read.

    Everything it holds is per process: a forked worker starts with no status, no
    connection and no thread, and probes before its first read (``ensure_started``).
    """

    def __init__(self) -> None:
        self._probing: ProcessLocal[_Probing] = ProcessLocal(_Probing)
        self._thread: ProcessLocal[threading.Thread] = ProcessLocal(self._start_thread)

    # --- reading --------------------------------------------------------------------

    def status(self, alias: str) -> ReplicaStatus:
        """Return the last known status of ``alias``."""
        return self._probing.get().statuses.get(alias) or ReplicaStatus(alias)

    def statuses(self) -> dict[str, ReplicaStatus]:
        """Return the last known status of every probed replica."""
        return dict(self._probing.get().statuses)

    def usable(self, alias: str, read_after: int | None) -> bool:
        """Return whether ``alias`` is up, within the lag bound, and past ``read_after``."""
        st = self._probing.get().statuses.get(alias)
        if st is None or not st.healthy:
            return False
        max_lag: float = settings.DATABASE_REPLICA_MAX_LAG_SECONDS
        if st.lag_seconds is not None and st.lag_seconds > max_lag:
            return False
        return read_after is None or (st.replay_lsn is not None and st.replay_lsn >= read_after)

    # --- writing --------------------------------------------------------------------

    def mark_down(self, alias: str, reason: str) -> None:
        """Open the circuit of ``alias``: no reads or probes until the retry delay passes."""
        probing = self._probing.get()
        probing.breaker(alias).failed()
        with probing.lock:
            old = self.status(alias)
            probing.statuses[alias] = replace(old, healthy=False, checked_at=time.monotonic())
            probing.changed.notify_all()
        record_probe(alias, healthy=False, lag_seconds=None)
        logger.warning("Replica %s marked down: %s", alias, reason)

    def probe(self, alias: str) -> ReplicaStatus:
        """Probe ``alias`` now on the monitor's own connection; record and return the result."""
        probing = self._probing.get()
        info = _conninfo(alias)
        key = tuple(sorted(info.items()))
        try:
            conn = self._connection(probing, alias, key, info)
            row = conn.execute(PROBE_SQL).fetchone()
        except psycopg.Error as exc:
            self._drop_connection(probing, alias)
            self.mark_down(alias, f"{type(exc).__name__}: {exc}".strip())
            return self.status(alias)
        replay = parse_lsn(row[0]) if row else None
        lag = float(row[1]) if row and row[1] is not None else None
        in_recovery = bool(row[2]) if row else None
        status = ReplicaStatus(alias, True, replay, lag, time.monotonic(), in_recovery)
        with probing.lock:
            was = self.status(alias)
            probing.statuses[alias] = status
            probing.changed.notify_all()
        probing.breaker(alias).succeeded()
        record_probe(alias, healthy=True, lag_seconds=lag)
        if not was.healthy and was.checked_at:
            logger.info("Replica %s is back (lag %.3f s)", alias, lag or 0.0)
        return status

    def probe_all(self) -> None:
        """Probe every live replica whose circuit is closed or due for a retry."""
        probing = self._probing.get()
        live = {alias for alias, _ in live_replicas()}
        for alias in live:
            if probing.breaker(alias).allow():
                self.probe(alias)
        for alias in set(probing.conns) - live:
            self._drop_connection(probing, alias)

    def wait_until(self, predicate: Callable[[], bool], timeout: float) -> bool:
        """Wait up to ``timeout`` s for ``predicate()``, checked after each probe; return it.

        ``predicate`` runs under the monitor's lock: it may read statuses, not probe.
        """
        probing = self._probing.get()
        with probing.changed:
            return probing.changed.wait_for(predicate, timeout)

    def wake(self) -> None:
        """Make the probing thread probe now instead of at the end of its interval."""
        self._probing.get().wake.set()

    # --- the thread -----------------------------------------------------------------

    def ensure_started(self) -> None:
        """Start this process's probing thread (again in a forked child), probing once first."""
        self._thread.get()

    def _start_thread(self) -> threading.Thread:
        self.probe_all()
        thread = threading.Thread(
            target=self._run, name="replica-monitor", daemon=True, args=(self._probing.get(),)
        )
        thread.start()
        return thread

    def _run(self, probing: _Probing) -> None:
        while True:
            probing.wake.wait(settings.DATABASE_REPLICA_CHECK_INTERVAL_SECONDS)
            probing.wake.clear()
            try:
                self.probe_all()
            except Exception:  # The monitor must outlive any one bad probe
                logger.exception("Replica probe failed")

    def _connection(
        self, probing: _Probing, alias: str, key: tuple[Any, ...], info: dict[str, Any]
    ) -> psycopg.Connection[Any]:
        cached = probing.conns.get(alias)
        if cached and cached[0] == key and not cached[1].closed:
            return cached[1]
        self._drop_connection(probing, alias)
        # No server-side prepared statements: the probe may go through PgBouncer in
        # transaction mode, where a prepared statement outlives its server connection.
        conn = psycopg.connect(
            autocommit=True,
            prepare_threshold=None,
            **{k: v for k, v in info.items() if v is not None},
        )
        probing.conns[alias] = (key, conn)
        return conn

    def _drop_connection(self, probing: _Probing, alias: str) -> None:
        cached = probing.conns.pop(alias, None)
        if cached:
            try:
                cached[1].close()
            except psycopg.Error:
                logger.debug("Closing the probe connection of %s failed", alias)


monitor = ReplicaMonitor()


class FallbackBudget:
    """A token bucket bounding reads sent to the primary because no replica is usable.

    Per process: ``rate`` reads per second with a burst of one second's worth. When it
    is empty the read is refused (503) rather than piled onto the primary, which is
    the database every write depends on.
    """

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._tokens: float | None = None
        self._stamp = 0.0

    def reset(self) -> None:
        """Refill the bucket (after a change of rate)."""
        with self._lock:
            self._tokens = None

    def take(self) -> bool:
        """Spend one fallback read; return False when the budget is exhausted."""
        rate = float(settings.DATABASE_REPLICA_FALLBACK_RPS)
        if rate <= 0:
            return True
        now = time.monotonic()
        with self._lock:
            tokens = rate if self._tokens is None else self._tokens
            tokens = min(rate, tokens + (now - self._stamp) * rate)
            self._stamp = now
            if tokens < 1:
                self._tokens = tokens
                return False
            self._tokens = tokens - 1
            return True


fallback_budget = FallbackBudget()


def replica_report() -> dict[str, dict[str, Any]]:
    """Return each live replica's health, lag (s) and replay LSN, probing once if needed.

    For /readyz and the metrics: read from the monitor, never from a request's connection.
    """
    replicas = live_replicas()
    if replicas:
        monitor.ensure_started()
    report: dict[str, dict[str, Any]] = {}
    for alias, weight in replicas:
        st = monitor.status(alias)
        report[alias] = {
            "healthy": st.healthy,
            "usable": monitor.usable(alias, None),
            "lag_seconds": st.lag_seconds,
            "replay_lsn": format_lsn(st.replay_lsn) if st.replay_lsn is not None else None,
            "in_recovery": st.in_recovery,
            "weight": weight,
        }
    return report
