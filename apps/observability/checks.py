"""Readiness checks: each reports the state and role of one dependency right now.

Every check runs in a thread of its own with a deadline (``READYZ_CHECK_TIMEOUT_SECONDS``),
all at once, so a dependency that hangs (a paused server, a half-open connection) is
reported ``down`` within about that time instead of holding the probe, and the
kubelet's, until its own timeout. A check whose previous probe is still stuck fails at
once rather than piling up another thread: at most one thread per check is ever blocked
on a hung dependency. Which failures make the pod unready is decided by
``apps.observability.readiness``, not here.
"""

from __future__ import annotations

import threading
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from django.conf import settings
from django.core.cache import cache
from django.db import connections

from apps.core.events.brokers import failover_retries

OK, DEGRADED, DOWN = "ok", "degraded", "down"


@dataclass(frozen=True)
class CheckResult:
    """The outcome of one readiness check: ``ok``, ``degraded`` or ``down``.

    ``role`` is what the dependency is to this pod (``leader``/``replica`` for
    PostgreSQL, ``master``/``replica`` for Redis, ``node`` for the broker), None when it
    could not be asked; ``target`` names the server the role belongs to; ``extra``
    holds what the body shows beside them (each replica, the broker's cluster).
    """

    name: str
    state: str
    detail: str
    role: str | None = None
    target: str | None = None
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def ok(self) -> bool:
        return self.state == OK

    @classmethod
    def down(cls, name: str, detail: str) -> CheckResult:
        return cls(name, DOWN, detail)


def _timeout() -> float:
    timeout: float = settings.READYZ_CHECK_TIMEOUT_SECONDS
    return timeout


def check_database() -> CheckResult:
    """Ask the primary whether it is in recovery, over a connection of its own.

    Its own connection, because a request's shared one (or the pool's) may be the very
    thing that hangs; the connect and statement timeouts stop a slow server from
    holding the probe's thread beyond its deadline where the server still answers. A
    server in recovery (a replica behind ``DATABASE_URL``, a leader demoted by a
    failover) takes no writes, so the pod cannot serve: that is ``down`` too.
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
    postgres = base.vendor == "postgresql"
    try:
        with probe.cursor() as cursor:
            cursor.execute("SELECT pg_is_in_recovery()" if postgres else "SELECT 0")
            in_recovery = bool(cursor.fetchone()[0])
    except Exception as exc:  # Any failure means "not ready", reported by name
        return CheckResult.down("database", type(exc).__name__)
    finally:
        probe.close()
    if not postgres:
        return CheckResult("database", OK, "ok", role="standalone", target=base.alias)
    if in_recovery:
        return CheckResult(
            "database", DOWN, "in recovery: takes no writes", role="replica", target=base.alias
        )
    return CheckResult("database", OK, "ok", role="leader", target=base.alias)


def check_cache() -> CheckResult:
    """Write and read back a short-lived key in the default cache; ask Redis its role."""
    key, value = "readyz:probe", uuid.uuid4().hex
    try:
        cache.set(key, value, timeout=5)
        ok = cache.get(key) == value
        role = _redis_role()
    except Exception as exc:  # Any failure means "down", reported by name
        return CheckResult.down("cache", type(exc).__name__)
    if not ok:
        return CheckResult("cache", DOWN, "read back a different value", role=role)
    return CheckResult("cache", OK, "ok", role=role, target="default")


def _redis_role() -> str:
    """Return ``master`` or ``replica`` from Redis's ``ROLE``; ``in-process`` without Redis."""
    if settings.CACHES["default"]["BACKEND"] != "django_redis.cache.RedisCache":
        return "in-process"
    from django_redis import get_redis_connection

    reply = get_redis_connection("default").role()
    role = reply[0].decode() if isinstance(reply[0], bytes) else str(reply[0])
    # Redis still answers "slave" for a replica.
    return "replica" if role == "slave" else role


def check_broker() -> CheckResult:
    """Open (and close) a connection to the Celery broker, when one is configured."""
    if not settings.CELERY_BROKER_URL:
        return CheckResult("broker", OK, "in-process (no broker configured)", role="in-process")
    from kombu import Connection

    timeout = _timeout()
    try:
        with Connection(settings.CELERY_BROKER_URL, connect_timeout=timeout) as conn:
            # A cluster's URLs: ready while any node answers (one attempt at each).
            conn.ensure_connection(
                max_retries=failover_retries(settings.CELERY_BROKER_URL),
                timeout=max(1, round(timeout)),
            )
            # With several URLs (a cluster), the one that answered: kombu's current host.
            node = str(conn.host)
            server = getattr(conn.connection, "server_properties", None) or {}
    except Exception as exc:  # Any failure means "down", reported by name
        return CheckResult.down("broker", type(exc).__name__)
    extra = {"node": node, "cluster": _text(server.get("cluster_name"))}
    return CheckResult("broker", OK, "ok", role="node", target=node, extra=extra)


def _text(value: object) -> str | None:
    if isinstance(value, bytes):
        return value.decode(errors="replace")
    return None if value is None else str(value)


def check_replicas() -> CheckResult:
    """Report each replica's state, role and lag, from the router's health monitor.

    ``ok`` while every replica serves reads, ``degraded`` while some do not (lagging
    past the bound, or down), ``down`` when none does; either way their reads fall back
    to the primary (within its budget), so the pod still serves.
    """
    from apps.core.db.health import replica_report

    report = replica_report()
    if not report:
        return CheckResult("replica", OK, "none configured (reads on the primary)")
    parts, replicas = [], {}
    for alias, st in report.items():
        role = None if st["in_recovery"] is None else "replica" if st["in_recovery"] else "leader"
        if not st["healthy"]:
            state = DOWN
            parts.append(f"{alias}: down (reads on the primary)")
        else:
            state = OK if st["usable"] else DEGRADED
            text = "ok" if st["usable"] else "lagging past the bound (reads on the primary)"
            parts.append(f"{alias}: {text}, lag {st['lag_seconds']:.3f} s")
        replicas[alias] = {"state": state, "role": role, "lag_seconds": st["lag_seconds"]}
    states = {r["state"] for r in replicas.values()}
    overall = OK if states == {OK} else DOWN if states == {DOWN} else DEGRADED
    return CheckResult("replica", overall, "; ".join(parts), extra={"replicas": replicas})


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
            self.result = CheckResult.down(self.check_name, type(exc).__name__)
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
            probes.append(CheckResult.down(name, "previous probe still running"))
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
            results.append(CheckResult.down(entry.check_name, f"timed out after {timeout:g} s"))
        else:
            results.append(entry.result)
    return results
