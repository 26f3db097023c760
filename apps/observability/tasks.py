"""Tasks that watch the queues themselves."""

from __future__ import annotations

import time

from celery import shared_task
from prometheus_client import Histogram

queue_wait_seconds = Histogram(
    "celery_queue_wait_seconds",
    "Time a probe task waited in its queue before a worker started it.",
    ["queue"],
    buckets=(0.01, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 300.0),
)


@shared_task(name="observability.probe_queue_latency", ignore_result=True)
def probe_queue_latency(sent_at: float, queue: str) -> float:
    """Observe and return how long this probe waited in ``queue`` (schedule it with beat)."""
    waited = max(0.0, time.time() - sent_at)
    queue_wait_seconds.labels(queue).observe(waited)
    return waited
