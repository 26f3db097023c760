"""The project's Prometheus metrics: names, labels and buckets in one place.

Every metric is a plain ``prometheus_client`` object in the default registry. Under
gunicorn or Celery's prefork pool ``PROMETHEUS_MULTIPROC_DIR`` is set, each process
writes its values to files there, and ``/metrics`` adds them up (see
``apps.observability.multiproc``). Metrics that belong to one area are defined by that
area's own module with ``prometheus_client`` (``apps/ratelimit/metrics.py``, the cache and
database code in ``apps/core``) and are exposed and aggregated the same way; gauges
use a ``multiprocess_mode`` (``mostrecent``, ``max``, ``livesum``) so that processes'
readings combine sensibly. Values read from outside at scrape time (queue depth, dead
letters) are registered with ``celery_signals.register_scrape_gauge``.

Label values are always drawn from small fixed sets (route templates, task names,
policy names, database aliases): an id or a raw path in a label would create one
series per value.
"""

from __future__ import annotations

from prometheus_client import Counter, Histogram

# The contract's buckets, in seconds.
HTTP_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)
# Tasks include webhooks with retries, so the range reaches further.
TASK_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0)

# --- HTTP (the contract's names) -------------------------------------------------------

http_requests_total = Counter(
    "http_requests_total",
    "HTTP requests answered, by method, route template and status code.",
    ["method", "endpoint", "status"],
)
http_request_duration_seconds = Histogram(
    "http_request_duration_seconds",
    "Time to answer an HTTP request, by method and route template.",
    ["method", "endpoint"],
    buckets=HTTP_BUCKETS,
)

# --- Celery ----------------------------------------------------------------------------

CELERY_TASK_STATES = ("sent", "started", "succeeded", "failed", "retried")

celery_tasks_total = Counter(
    "celery_tasks_total",
    "Celery task events by task name and state (sent, started, succeeded, failed, retried).",
    ["task", "state"],
)
celery_task_runtime_seconds = Histogram(
    "celery_task_runtime_seconds",
    "Time a Celery task took to run, by task name.",
    ["task"],
    buckets=TASK_BUCKETS,
)

# --- Domain ----------------------------------------------------------------------------

ORDER_OUTCOMES = ("placed", "confirmed", "rejected")

orders_total = Counter(
    "orders_total",
    "Orders by outcome: placed (created pending), confirmed, rejected.",
    ["outcome"],
)


def record_order(outcome: str) -> None:
    """Count one order outcome: ``placed``, ``confirmed`` or ``rejected``."""
    if outcome not in ORDER_OUTCOMES:
        raise ValueError(f"unknown order outcome {outcome!r}; expected one of {ORDER_OUTCOMES}")
    orders_total.labels(outcome=outcome).inc()
