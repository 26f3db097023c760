"""Gauges read at scrape time on the worker's metrics endpoint: queue depth, dead letters."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from django.conf import settings
from django.db.models import Count

from apps.core.events.brokers import failover_retries
from apps.observability.celery_signals import register_scrape_gauge


def _queue_names() -> list[str]:
    queues: list[Any] = [
        *(getattr(settings, "CELERY_TASK_QUEUES", None) or []),
        *(getattr(settings, "EVENTS_DEAD_LETTER_QUEUES", None) or []),
    ]
    names = [q.name for q in queues]
    return names or [getattr(settings, "CELERY_TASK_DEFAULT_QUEUE", "celery")]


def queue_lengths() -> Iterable[tuple[dict[str, str], float]]:
    """Return the ready-message count of every configured queue, from the broker."""
    if not settings.CELERY_BROKER_URL:
        return []
    from kombu import Connection

    readings = []
    with Connection(settings.CELERY_BROKER_URL, connect_timeout=2) as conn:
        # The first node of a cluster that answers (one attempt at each URL).
        conn.ensure_connection(max_retries=failover_retries(settings.CELERY_BROKER_URL))
        for name in _queue_names():
            count = _ready_messages(conn, name)
            if count is not None:
                readings.append(({"queue": name}, float(count)))
    return readings


def _ready_messages(conn: Any, name: str) -> int | None:
    """Return the ready count of queue ``name``, or None when it is not declared yet."""
    channel = conn.channel()
    try:
        # Passive: read the count without creating a queue that does not exist.
        _, count, _ = channel.queue_declare(queue=name, passive=True)
    except conn.channel_errors:
        return None
    finally:
        channel.close()
    return int(count)


def dead_letter_counts() -> Iterable[tuple[dict[str, str], float]]:
    """Return the number of stored dead letters by status (pending, replayed, discarded)."""
    from apps.core.events.models import DeadLetter

    counts = dict(
        DeadLetter.objects.values_list("status").annotate(n=Count("id")).values_list("status", "n")
    )
    return [
        ({"status": status}, float(counts.get(status, 0))) for status in DeadLetter.Status.values
    ]


def register() -> None:
    """Register the scrape-time gauges."""
    register_scrape_gauge(
        "celery_queue_length", "Messages ready in each broker queue.", queue_lengths
    )
    register_scrape_gauge(
        "dead_letters", "Dead-lettered messages stored, by status.", dead_letter_counts
    )
