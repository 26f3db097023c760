"""Readiness checks: each answers whether one dependency is usable right now.

Every check runs in a thread of its own with a deadline (``READYZ_CHECK_TIMEOUT_SECONDS``),
all at once, so a dependency that hangs (a paused server, a half-open connection) turns
``/readyz`` into a 503 naming it within about that time instead of holding the probe,
and the kubelet's, until its own timeout. A check whose previous probe is still stuck
fails at once rather than piling up another thread: at most one thread per check is
ever blocked on a hung dependency.
"""

from __future__ import annotations

import threading
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from django.conf import settings
from django.core.cache import cache
from django.db import connections

from apps.core.events.brokers import failover_retries


@dataclass(frozen=True)
class CheckResult:
    """The outcome of one readiness check."""

    name: str
    ok: bool
    detail: str


def _timeout() -> float:
    timeout: float = settings.READYZ_CHECK_TIMEOUT_SECONDS
    return timeout


def check_database() -> CheckResult:
    """Run ``SELECT 1`` on the primary over a connection of its own, with short timeouts.

    Its own connection, because a request's shared one (or the pool's) may be the very
    thing that hangs; the connect and statement timeouts stop a slow server from
    holding the probe's thread beyond its deadline where the server still answers.
    """
    base = connections["default"]
    settings_dict: dict[str, Any] = {**base.settings_dict}
    if base.vendor == "postgresql":
        options = {k: v for k, v in settings_dict.get("OPTIONS", {}).items() if k != "pool"}
        timeout_ms = max(1, int(_timeout() * 1000))
        options["connect_timeout"] = max(1, round(_timeout()))
        options["options"] = (
            f"{options.get('options', '')} -c statement_timeout={timeout_ms}".strip()
        )
        settings_dict["OPTIONS"] = options
        settings_dict["CONN_MAX_AGE"] = 0
    probe = type(base)(settings_dict, base.alias)
    try:
        with probe.cursor() as cursor:
            cursor.execute("SELECT 1")
    except Exception as exc:  # Any failure means "not ready", reported by name
        return CheckResult("database", ok=False, detail=type(exc).__name__)
    finally:
        probe.close()
    return CheckResult("database", ok=True, detail="ok")


def check_cache() -> CheckResult:
    """Write and read back a short-lived key in the default cache."""
    key, value = "readyz:probe", uuid.uuid4().hex
    try:
        cache.set(key, value, timeout=5)
        ok = cache.get(key) == value
    except Exception as exc:  # Any failure means "not ready", reported by name
        return CheckResult("cache", ok=False, detail=type(exc).__name__)
    return CheckResult("cache", ok=ok, detail="ok" if ok else "read back a different value")


def check_broker() -> CheckResult:
    """Open (and close) a connection to the Celery broker, when one is configured."""
    if not settings.CELERY_BROKER_URL:
        return CheckResult("broker", ok=True, detail="in-process (no broker configured)")
    from kombu import Connection

    timeout = _timeout()
    try:
        with Connection(settings.CELERY_BROKER_URL, connect_timeout=timeout) as conn:
            # A cluster's URLs: ready while any node answers (one attempt at each).
            conn.ensure_connection(
                max_retries=failover_retries(settings.CELERY_BROKER_URL),
                timeout=max(1, round(timeout)),
            )
    except Exception as exc:  # Any failure means "not ready", reported by name
        return CheckResult("broker", ok=False, detail=type(exc).__name__)
    return CheckResult("broker", ok=True, detail="ok")


def check_replicas() -> CheckResult:
    """Report each replica's state and lag, from the router's health monitor.

    Stays ok while replicas are down or lagging: their reads fall back to the primary
    (within its budget), and taking every pod out of service for that would turn a
    degraded replica into a full outage.
    """
    from apps.core.db.health import replica_report

    report = replica_report()
    if not report:
        return CheckResult("replica", ok=True, detail="none configured (reads on the primary)")
    parts = []
    for alias, st in report.items():
        if not st["healthy"]:
            parts.append(f"{alias}: down (reads on the primary)")
        else:
            state = "ok" if st["usable"] else "lagging past the bound (reads on the primary)"
            parts.append(f"{alias}: {state}, lag {st['lag_seconds']:.3f} s")
    return CheckResult("replica", ok=True, detail="; ".join(parts))


# (name, check): the name is what a timed-out check is reported as.
READINESS_CHECKS: tuple[tuple[str, Callable[[], CheckResult]], ...] = (
    ("database", check_database),
    ("replica", check_replicas),
    ("cache", check_cache),
    ("broker", check_broker),
)

# Names of the checks whose probe thread has not returned yet.
_in_flight: set[str] = set()
_in_flight_lock = threading.Lock()


class _Probe(threading.Thread):
    """Run one check in a daemon thread, so a hung one never blocks process exit."""

    def __init__(self, name: str, check: Callable[[], CheckResult]) -> None:
        super().__init__(name=f"readyz-{name}", daemon=True)
        self.check_name = name
        self.check = check
        self.result: CheckResult | None = None

    def run(self) -> None:
        try:
            self.result = self.check()
        except Exception as exc:  # A check that raises is a failing check, not a 500
            self.result = CheckResult(self.check_name, ok=False, detail=type(exc).__name__)
        finally:
            with _in_flight_lock:
                _in_flight.discard(self.check_name)
            # The thread's own per-thread connections (cache clients) go with it.
            connections.close_all()


def run_readiness_checks(timeout: float | None = None) -> list[CheckResult]:
    """Run every readiness check at once; return their results in order.

    A check that has not answered within ``timeout`` seconds (default
    ``READYZ_CHECK_TIMEOUT_SECONDS``) fails as timed out.
    """
    timeout = _timeout() if timeout is None else timeout
    probes: list[_Probe | CheckResult] = []
    for name, check in READINESS_CHECKS:
        with _in_flight_lock:
            stuck = name in _in_flight
            if not stuck:
                _in_flight.add(name)
        if stuck:
            probes.append(CheckResult(name, ok=False, detail="previous probe still running"))
            continue
        probe = _Probe(name, check)
        probe.start()
        probes.append(probe)
    deadline = time.monotonic() + timeout
    results: list[CheckResult] = []
    for entry in probes:
        if isinstance(entry, CheckResult):
            results.append(entry)
            continue
        entry.join(max(0.0, deadline - time.monotonic()))
        if entry.result is None:
            results.append(
                CheckResult(entry.check_name, ok=False, detail=f"timed out after {timeout:g} s")
            )
        else:
            results.append(entry.result)
    return results
