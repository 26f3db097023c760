"""The transactional outbox: write events with the data that caused them, publish after commit.

``outbox_write`` must run inside the caller's transaction; the event row commits or rolls
back with it. On commit the relay publishes it at once; whatever is left behind (broker
down, process killed between commit and publish) is published by ``outbox_sweep``,
which Celery beat runs every ``OUTBOX_SWEEP_SECONDS``. Publishing is at least once;
consumers make it exactly once in effect with a processed-event record.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Iterable, Mapping
from datetime import timedelta
from typing import Any
from uuid import UUID

from celery import current_app
from django.conf import settings
from django.db import transaction
from django.db.models import F
from django.utils import timezone

from apps.core.correlation import CORRELATION_HEADER
from apps.core.models import OutboxEvent
from apps.core.request_context import current_request_id

logger = logging.getLogger(__name__)

SWEEP_BATCH_SIZE = 500

# Monotonic time before which requests do not try the broker again after a failure.
_publish_paused_until = 0.0


def outbox_write(*, event_type: str, payload: Mapping[str, Any]) -> OutboxEvent:
    """Record an event in the current transaction and publish it once that commits.

    Raise RuntimeError outside a transaction: an event written on its own could
    describe data that never commits.
    """
    if not transaction.get_connection().in_atomic_block:
        raise RuntimeError("outbox_write() must run inside the transaction it describes.")
    event = OutboxEvent.objects.create(
        event_type=event_type,
        payload=dict(payload),
        correlation_id=current_request_id() or "",
    )
    transaction.on_commit(lambda: outbox_publish_after_commit(event.id), robust=True)
    return event


def outbox_publish_after_commit(event_id: UUID) -> None:
    """Publish one just-committed event, unless the broker failed a moment ago."""
    if time.monotonic() < _publish_paused_until:
        return
    outbox_publish(event_ids=[event_id])


def outbox_sweep(*, min_age_seconds: float | None = None) -> int:
    """Publish every unsent event older than ``min_age_seconds``; return how many went out.

    The age keeps the sweep off events whose own commit hook is publishing them.
    """
    age = settings.OUTBOX_SWEEP_MIN_AGE_SECONDS if min_age_seconds is None else min_age_seconds
    cutoff = timezone.now() - timedelta(seconds=age)
    sent = 0
    while True:
        ids = list(
            OutboxEvent.objects.filter(sent_at__isnull=True, created_at__lte=cutoff)
            .order_by("created_at")
            .values_list("id", flat=True)[:SWEEP_BATCH_SIZE]
        )
        if not ids:
            return sent
        published = outbox_publish(event_ids=ids)
        sent += published
        if published < len(ids):
            return sent


def outbox_publish(*, event_ids: Iterable[UUID]) -> int:
    """Publish the given unsent events to their consumers and mark them sent.

    Each event is locked with SKIP LOCKED while it is published, so the commit hook and
    the sweep never publish one event at the same time. Stop at the first broker error,
    leaving the rest for the sweep. Return the number of events published.
    """
    global _publish_paused_until
    published = 0
    for event_id in event_ids:
        try:
            with transaction.atomic():
                event = (
                    OutboxEvent.objects.select_for_update(skip_locked=True)
                    .filter(pk=event_id, sent_at__isnull=True)
                    .first()
                )
                if event is None:
                    continue
                _send(event)
                OutboxEvent.objects.filter(pk=event.pk).update(
                    sent_at=timezone.now(), publish_attempts=F("publish_attempts") + 1
                )
        except Exception:
            # Any broker failure: the event stays unsent and the sweep retries it later.
            logger.warning("outbox: publishing event %s failed", event_id, exc_info=True)
            OutboxEvent.objects.filter(pk=event_id).update(
                publish_attempts=F("publish_attempts") + 1
            )
            _publish_paused_until = time.monotonic() + settings.OUTBOX_PUBLISH_BACKOFF_SECONDS
            return published
        published += 1
    return published


def _send(event: OutboxEvent) -> None:
    """Send one message per consumer task of the event's type."""
    routes: Mapping[str, list[str]] = settings.OUTBOX_ROUTES
    consumers = routes.get(event.event_type, [])
    if not consumers:
        logger.warning("outbox: no consumer for event type %s", event.event_type)
    headers = {CORRELATION_HEADER: event.correlation_id}
    kwargs = {"event_id": str(event.id), **event.payload}
    for task_name in consumers:
        # A signature runs in-process when tasks are eager and is sent by name otherwise;
        # retry=False: a broker that is down fails now and the sweep publishes later.
        current_app.signature(task_name, kwargs=kwargs).apply_async(headers=headers, retry=False)
