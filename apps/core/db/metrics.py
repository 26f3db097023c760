"""Prometheus metrics of the replica probe: each replica's health and lag.

Defined here and exposed by ``/metrics`` with every other metric of the process (added
up over worker processes; see ``apps.observability.metrics``). The gauges keep the most
recent reading of any process: every process probes the same replicas, so the newest
probe is the best answer, and a dead worker's old reading never outlives a live one's.
"""

from __future__ import annotations

from prometheus_client import Gauge

REPLICA_LAG_SECONDS = Gauge(
    "replica_lag_seconds",
    "Seconds the replica's replay is behind (0 when it has replayed all it received).",
    ["alias"],
    multiprocess_mode="mostrecent",
)
REPLICA_HEALTHY = Gauge(
    "replica_healthy",
    "1 while the replica answers its probe, 0 while its circuit is open.",
    ["alias"],
    multiprocess_mode="mostrecent",
)


def record_probe(alias: str, *, healthy: bool, lag_seconds: float | None) -> None:
    """Export the outcome of one probe of ``alias``."""
    REPLICA_HEALTHY.labels(alias=alias).set(1 if healthy else 0)
    if healthy and lag_seconds is not None:
        REPLICA_LAG_SECONDS.labels(alias=alias).set(lag_seconds)
