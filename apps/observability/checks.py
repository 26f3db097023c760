"""Readiness checks: each answers whether one dependency is usable right now."""

from __future__ import annotations

import uuid
from collections.abc import Callable
from dataclasses import dataclass

from django.conf import settings
from django.core.cache import cache
from django.db import connections


@dataclass(frozen=True)
class CheckResult:
    """The outcome of one readiness check."""

    name: str
    ok: bool
    detail: str


def check_database() -> CheckResult:
    """Run ``SELECT 1`` on the primary (replicas: ``check_replicas``)."""
    try:
        with connections["default"].cursor() as cursor:
            cursor.execute("SELECT 1")
    except Exception as exc:  # Any failure means "not ready", reported by name
        return CheckResult("database", ok=False, detail=type(exc).__name__)
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

    try:
        with Connection(settings.CELERY_BROKER_URL, connect_timeout=1) as conn:
            conn.ensure_connection(max_retries=0, timeout=1)
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


READINESS_CHECKS: tuple[Callable[[], CheckResult], ...] = (
    check_database,
    check_replicas,
    check_cache,
    check_broker,
)


def run_readiness_checks() -> list[CheckResult]:
    """Run every readiness check and return their results in order."""
    return [check() for check in READINESS_CHECKS]
