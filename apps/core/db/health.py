"""Replica health: replay position, lag, and a circuit breaker per replica alias.

A daemon thread per process probes every live replica on its own connection (never a
request's), so requests read cached figures and never wait on a slow replica. A
replica that refuses connections or errors is marked down at once, by the probe or
by the request that hit the error, and probed again after the retry delay.
"""

from __future__ import annotations

import logging
import os
import threading
import time
from dataclasses import dataclass, replace
from typing import Any

import psycopg
from django.conf import settings
from django.db import connections

from apps.core.db.lsn import parse_lsn
from apps.core.db.metrics import record_probe

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
       END::float8
"""


@dataclass(frozen=True)
class ReplicaStatus:
    """The last known state of one replica."""

    alias: str
    healthy: bool = False
    replay_lsn: int | None = None
    lag_seconds: float | None = None
    checked_at: float = 0.0
    # While the circuit is open (down), no probe or read is tried before this instant.
    retry_at: float = 0.0
    failures: int = 0


def live_replicas() -> list[tuple[str, int]]:
    """Return the replica aliases (with weights) that point at a server of their own.

    An alias that is a test mirror shares the primary's settings dict; reads for it
    are the primary's reads, so it is not a replica to route to or to probe.
    """
    weights: dict[str, int] = settings.DATABASE_REPLICA_WEIGHTS
    if not weights:
        return []
    databases = connections.settings
    primary = databases["default"]
    return [(alias, w) for alias, w in weights.items() if databases[alias] is not primary]


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


class ReplicaMonitor:
    """Probe live replicas on an interval and answer which may serve a read."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._statuses: dict[str, ReplicaStatus] = {}
        self._conns: dict[str, tuple[tuple[Any, ...], psycopg.Connection[Any]]] = {}
        self._thread: threading.Thread | None = None
        self._pid = 0
        self._wake = threading.Event()

    # --- reading --------------------------------------------------------------------

    def status(self, alias: str) -> ReplicaStatus:
        """Return the last known status of ``alias``."""
        return self._statuses.get(alias) or ReplicaStatus(alias)

    def statuses(self) -> dict[str, ReplicaStatus]:
        """Return the last known status of every probed replica."""
        return dict(self._statuses)

    def usable(self, alias: str, read_after: int | None) -> bool:
        """Return whether ``alias`` is up, within the lag bound, and past ``read_after``."""
        st = self._statuses.get(alias)
        if st is None or not st.healthy:
            return False
        max_lag: float = settings.DATABASE_REPLICA_MAX_LAG_SECONDS
        if st.lag_seconds is not None and st.lag_seconds > max_lag:
            return False
        return read_after is None or (st.replay_lsn is not None and st.replay_lsn >= read_after)

    # --- writing --------------------------------------------------------------------

    def mark_down(self, alias: str, reason: str) -> None:
        """Open the circuit of ``alias``: no reads or probes until the retry delay passes."""
        now = time.monotonic()
        with self._lock:
            old = self.status(alias)
            self._statuses[alias] = replace(
                old,
                healthy=False,
                checked_at=now,
                retry_at=now + settings.DATABASE_REPLICA_RETRY_SECONDS,
                failures=old.failures + 1,
            )
        record_probe(alias, healthy=False, lag_seconds=None)
        logger.warning("Replica %s marked down: %s", alias, reason)

    def probe(self, alias: str) -> ReplicaStatus:
        """Probe ``alias`` now on the monitor's own connection; record and return the result."""
        info = _conninfo(alias)
        key = tuple(sorted(info.items()))
        try:
            conn = self._connection(alias, key, info)
            row = conn.execute(PROBE_SQL).fetchone()
        except psycopg.Error as exc:
            self._drop_connection(alias)
            self.mark_down(alias, f"{type(exc).__name__}: {exc}".strip())
            return self.status(alias)
        now = time.monotonic()
        replay = parse_lsn(row[0]) if row else None
        lag = float(row[1]) if row and row[1] is not None else None
        with self._lock:
            was = self.status(alias)
            self._statuses[alias] = ReplicaStatus(alias, True, replay, lag, now, 0.0, 0)
        record_probe(alias, healthy=True, lag_seconds=lag)
        if not was.healthy and was.failures:
            logger.info("Replica %s is back (lag %.3f s)", alias, lag or 0.0)
        return self._statuses[alias]

    def probe_all(self) -> None:
        """Probe every live replica whose circuit is closed or due for a retry."""
        live = {alias for alias, _ in live_replicas()}
        now = time.monotonic()
        for alias in live:
            if self.status(alias).retry_at <= now:
                self.probe(alias)
        for alias in set(self._conns) - live:
            self._drop_connection(alias)

    def wake(self) -> None:
        """Make the probing thread probe now instead of at the end of its interval."""
        self._wake.set()

    # --- the thread -----------------------------------------------------------------

    def ensure_started(self) -> None:
        """Start the probing thread in this process, probing once before returning.

        The pid check restarts it in a forked worker, where the parent's thread is gone.
        """
        pid = os.getpid()
        if self._pid == pid:
            return
        with self._lock:
            if self._pid == pid:
                return
            self._conns = {}
            self._pid = pid
        self.probe_all()
        self._thread = threading.Thread(
            target=self._run, name="replica-monitor", daemon=True, args=(pid,)
        )
        self._thread.start()

    def _run(self, pid: int) -> None:
        while self._pid == pid:
            self._wake.wait(settings.DATABASE_REPLICA_CHECK_INTERVAL_SECONDS)
            self._wake.clear()
            try:
                self.probe_all()
            except Exception:  # The monitor must outlive any one bad probe
                logger.exception("Replica probe failed")

    def _connection(
        self, alias: str, key: tuple[Any, ...], info: dict[str, Any]
    ) -> psycopg.Connection[Any]:
        cached = self._conns.get(alias)
        if cached and cached[0] == key and not cached[1].closed:
            return cached[1]
        self._drop_connection(alias)
        # No server-side prepared statements: the probe may go through PgBouncer in
        # transaction mode, where a prepared statement outlives its server connection.
        conn = psycopg.connect(
            autocommit=True,
            prepare_threshold=None,
            **{k: v for k, v in info.items() if v is not None},
        )
        self._conns[alias] = (key, conn)
        return conn

    def _drop_connection(self, alias: str) -> None:
        cached = self._conns.pop(alias, None)
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
    from apps.core.db.lsn import format_lsn

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
            "weight": weight,
        }
    return report
