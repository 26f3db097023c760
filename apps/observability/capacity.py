"""Capacity planning from measured throughput, and the scale decision matrix.

Pure functions over exact decimals, so that a plan is reproducible to the request:
``1000 × 2 × 1.5`` is 3000, not 3000.0000000000005, and the pod count rounds up only
when the division truly leaves a remainder.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass
from decimal import Decimal, InvalidOperation
from pathlib import Path

from apps.core.http.errors import InvalidInput

# A web tier never runs fewer pods than this: a rolling update or the loss of one pod
# must leave something serving (and a PodDisruptionBudget needs a second pod to allow
# voluntary evictions).
HPA_MIN_REPLICAS_FLOOR = 2


@dataclass(frozen=True)
class CapacityPlan:
    """Required capacity and, when a per-pod throughput is known, the pods it takes."""

    peak_rps: Decimal
    growth: Decimal
    safety: Decimal
    required_rps: Decimal
    per_pod_rps: Decimal | None
    pods_needed: int | None
    hpa_min_replicas: int | None
    hpa_max_replicas: int | None


@dataclass(frozen=True)
class ScaleRow:
    """One row of the scale decision matrix: ``low <= users < high``."""

    low: int
    high: int | None
    label: str
    architecture: str
    database: str
    caching: str
    notes: str
    highscale: tuple[str, ...]


def parse_positive(name: str, raw: str | int | float | Decimal) -> Decimal:
    """Return ``raw`` as a finite Decimal greater than zero, or raise ``InvalidInput``."""
    try:
        value = Decimal(str(raw).strip())
    except InvalidOperation:
        raise InvalidInput(f"{name} must be a number, got {raw!r}.") from None
    if not value.is_finite():
        raise InvalidInput(f"{name} must be a finite number, got {raw!r}.")
    if value <= 0:
        raise InvalidInput(f"{name} must be greater than zero, got {raw!r}.")
    return value


def pods_for(rps: Decimal, per_pod_rps: Decimal) -> int:
    """Return how many pods serving ``per_pod_rps`` each carry ``rps``, rounded up."""
    return math.ceil(rps / per_pod_rps)


def capacity_plan(
    *,
    peak_rps: Decimal,
    growth: Decimal,
    safety: Decimal,
    per_pod_rps: Decimal | None = None,
) -> CapacityPlan:
    """Return the plan: required = peak × growth × safety, then pods and HPA bounds.

    The HPA's ``minReplicas`` carries today's peak with the safety margin
    (``ceil(peak × safety / per_pod)``, never below ``HPA_MIN_REPLICAS_FLOOR``);
    its ``maxReplicas`` carries the required capacity, i.e. the peak after growth
    (``ceil(required / per_pod)``, never below the minimum).
    """
    for name, value in (("peak RPS", peak_rps), ("growth", growth), ("safety", safety)):
        parse_positive(name, value)
    required = peak_rps * growth * safety
    if per_pod_rps is None:
        return CapacityPlan(peak_rps, growth, safety, required, None, None, None, None)
    parse_positive("per-pod RPS", per_pod_rps)
    pods = pods_for(required, per_pod_rps)
    hpa_min = max(HPA_MIN_REPLICAS_FLOOR, pods_for(peak_rps * safety, per_pod_rps))
    hpa_max = max(hpa_min, pods)
    return CapacityPlan(peak_rps, growth, safety, required, per_pod_rps, pods, hpa_min, hpa_max)


def k6_summary_rps(path: Path) -> Decimal:
    """Return the measured request rate (``http_reqs`` rate) of a k6 summary JSON file.

    Both shapes k6 writes are read: ``--summary-export`` (``metrics.http_reqs.rate``)
    and the ``handleSummary`` data (``metrics.http_reqs.values.rate``).
    """
    try:
        document = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise InvalidInput(f"No k6 summary at {path}.") from None
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise InvalidInput(f"{path} is not a readable k6 summary JSON: {exc}.") from None
    metric = document.get("metrics", {}).get("http_reqs") if isinstance(document, dict) else None
    if isinstance(metric, dict) and isinstance(metric.get("values"), dict):
        metric = metric["values"]
    rate = metric.get("rate") if isinstance(metric, dict) else None
    if isinstance(rate, bool) or not isinstance(rate, int | float):
        raise InvalidInput(f"{path} has no http_reqs rate: is it a k6 summary?")
    return parse_positive(f"the http_reqs rate in {path}", rate)


SCALE_MATRIX: tuple[ScaleRow, ...] = (
    ScaleRow(
        low=1,
        high=1_000,
        label="under 1K users",
        architecture="Monolith on one server",
        database="Single PostgreSQL (or the embedded SQLite for a demo)",
        caching="Optional: in-process",
        notes="Ship features; measure before optimising.",
        highscale=(
            "one gunicorn (deploy/gunicorn.conf.py)",
            "DATABASE_URL: one PostgreSQL",
            "tasks in-process (no CELERY_BROKER_URL)",
            "/healthz, /readyz, /metrics",
        ),
    ),
    ScaleRow(
        low=1_000,
        high=10_000,
        label="1K to 10K users",
        architecture="Modular monolith, 2+ stateless web pods behind a load balancer",
        database="PostgreSQL primary with connection pooling",
        caching="Redis cache-aside",
        notes="Move slow work to background workers; alert on p95 and error rate.",
        highscale=(
            "nginx → 2+ gunicorn (deploy/nginx)",
            "REDIS_URL: cache, rate limits, invalidation",
            "CELERY_BROKER_URL: RabbitMQ, Celery worker and beat",
            "PgBouncer in transaction mode (deploy/pgbouncer)",
            "Prometheus alerts (deploy/prometheus)",
        ),
    ),
    ScaleRow(
        low=10_000,
        high=100_000,
        label="10K to 100K users",
        architecture="Horizontally scaled web tier (HPA), separate worker pool",
        database="Primary plus read replicas, PgBouncer",
        caching="Multi-level: per-process L1 + Redis, HTTP caching",
        notes="Reads off the primary; events through an outbox; rate limit every client.",
        highscale=(
            "everything of the 1K-10K row",
            "DATABASE_REPLICA_URLS: streaming replicas, lag-aware routing",
            "CACHE_L1_*: per-process L1 over Redis",
            "HPA for web and workers (deploy/k8s)",
            "RATELIMIT_*: per-user and per-IP limits",
            "make stack-ha: Patroni PostgreSQL, Redis Sentinel, a 3-node RabbitMQ cluster",
            "REDIS_CLUSTER_NODES: Redis Cluster for cache, limits and invalidation",
        ),
    ),
    ScaleRow(
        low=100_000,
        high=1_000_000,
        label="100K to 1M users",
        architecture="Services split out where load differs, autoscaled on Kubernetes",
        database="Replicas per region, partitioning of the largest tables",
        caching="Redis cluster, edge micro-cache and CDN",
        notes="Queue-based load levelling; capacity plans from measured per-pod RPS.",
        highscale=(
            "everything of the 10K-100K row",
            "nginx micro-cache for anonymous GETs, a CDN in front",
            "more replicas (DATABASE_REPLICA_URLS weights), Celery workers per queue",
            "capacity_plan from a k6 find-capacity run",
            "DATABASE_SHARD_URLS: orders partitioned by owner over shard servers (postgres_fdw)",
            "make stack-sharded: that topology locally (2 shards, a 3+3 Redis Cluster)",
        ),
    ),
    ScaleRow(
        low=1_000_000,
        high=None,
        label="1M users and more",
        architecture="Distributed services, multi-region",
        database="Sharded or distributed SQL",
        caching="Global edge caching",
        notes="Dedicated teams per service; beyond what one highscale deployment covers.",
        highscale=(
            "everything of the 100K-1M row, per region",
            "shard the data by owner; highscale's apps become separate services",
        ),
    ),
)


def scale_advice(users: int) -> ScaleRow:
    """Return the matrix row for ``users``; a boundary (1K, 10K, 100K, 1M) opens its row."""
    if isinstance(users, bool) or not isinstance(users, int) or users < 1:
        raise InvalidInput(f"The number of users must be a whole number of 1 or more: {users!r}.")
    for row in SCALE_MATRIX:
        if users >= row.low and (row.high is None or users < row.high):
            return row
    raise AssertionError("SCALE_MATRIX covers every positive number")  # pragma: no cover
