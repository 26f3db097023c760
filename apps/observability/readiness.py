"""What ``/readyz`` answers: which check failures make the pod unready, and the gauges.

Only the primary database is critical: without it no order can be written. The
replicas, the cache and the broker each have a fallback (reads on the primary, the
database behind the cache and the limits' fail mode, the outbox), so they are
reported (``ok``, ``degraded``, ``down``) with a 200; taking every pod out of the
Service for one of them would turn a degraded dependency into a total outage. With
``strict`` every check counts, for operators who want the pod out on any failure.

Every evaluation sets ``readiness_state{check,state}`` (1 for the check's state, 0 for
the other two) and ``readiness_role{check,target,role}`` (1 for the role the target
holds now, 0 for the roles it held before), so ``/metrics`` shows what the last probe
saw and the alerts in ``deploy/prometheus/alerts.yml`` fire on a degraded dependency.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from prometheus_client import Gauge

from apps.observability.checks import DEGRADED, DOWN, OK, CheckResult, run_readiness_checks

# The checks without which the pod cannot serve.
CRITICAL_CHECKS = frozenset({"database"})
STATES = (OK, DEGRADED, DOWN)

READINESS_STATE = Gauge(
    "readiness_state",
    "1 for the state (ok, degraded, down) each readiness check found last, 0 for the others.",
    ["check", "state"],
    multiprocess_mode="mostrecent",
)
READINESS_ROLE = Gauge(
    "readiness_role",
    "1 for the role a dependency holds (leader/replica, master/replica, node), else 0.",
    ["check", "target", "role"],
    multiprocess_mode="mostrecent",
)

# The (check, target, role) series this process has set to 1, so a role that changed
# (a failover) or a node no longer connected goes back to 0 instead of staying 1.
_roles_set: set[tuple[str, str, str]] = set()


@dataclass(frozen=True)
class Readiness:
    """The answer to one ``/readyz``: its status code and body."""

    status_code: int
    body: dict[str, Any]


def readiness_evaluate(*, strict: bool = False) -> Readiness:
    """Run every check; answer 503 only for a critical one down (any, when ``strict``)."""
    results = run_readiness_checks()
    _record(results)
    failing = [r.name for r in results if not r.ok and (strict or r.name in CRITICAL_CHECKS)]
    impaired = [r.name for r in results if not r.ok]
    status = "unavailable" if failing else "degraded" if impaired else "ok"
    body: dict[str, Any] = {
        "status": status,
        "checks": {r.name: _check_body(r) for r in results},
    }
    if failing:
        body["detail"] = "Not ready: " + ", ".join(failing) + "."
    elif impaired:
        body["detail"] = "Serving without: " + ", ".join(impaired) + "."
    return Readiness(503 if failing else 200, body)


def _check_body(result: CheckResult) -> dict[str, Any]:
    return {
        "ok": result.ok,
        "state": result.state,
        "detail": result.detail,
        "role": result.role,
        **result.extra,
    }


def _roles(result: CheckResult) -> set[tuple[str, str, str]]:
    """Return the (check, target, role) series ``result`` holds at 1."""
    if result.name == "replica":
        replicas = result.extra.get("replicas", {})
        return {
            ("replica", alias, replica["role"])
            for alias, replica in replicas.items()
            if replica["role"] and replica["state"] != DOWN
        }
    # A failed check knows no role; a replica behind DATABASE_URL is down but says so.
    if result.role and result.target:
        return {(result.name, result.target, result.role)}
    return set()


def _record(results: list[CheckResult]) -> None:
    held: set[tuple[str, str, str]] = set()
    for result in results:
        for state in STATES:
            READINESS_STATE.labels(check=result.name, state=state).set(
                1 if result.state == state else 0
            )
        held |= _roles(result)
    for check, target, role in _roles_set - held:
        READINESS_ROLE.labels(check=check, target=target, role=role).set(0)
    for check, target, role in held:
        READINESS_ROLE.labels(check=check, target=target, role=role).set(1)
    _roles_set.clear()
    _roles_set.update(held)
