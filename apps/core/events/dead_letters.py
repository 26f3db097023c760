"""Dead letters: record, collect from RabbitMQ's dead-letter queue, replay, discard.

Replaying is safe because every consumer is idempotent (``consume_once``): a message
whose effect was applied after all does nothing the second time.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Mapping
from typing import Any

from celery import current_app
from django.conf import settings
from django.db import transaction
from django.utils import timezone
from kombu.exceptions import OperationalError as BrokerError

from apps.core.events.correlation import CORRELATION_HEADER
from apps.core.events.models import DeadLetter
from apps.core.http.errors import ApplicationError, InvalidInput

logger = logging.getLogger(__name__)


class BrokerUnavailable(ApplicationError):
    """The broker did not take a message (down, or failing over): retry shortly."""

    status_code = 503
    default_detail = "The message broker is unavailable; retry shortly."


DRAIN_BATCH_SIZE = 1000


def dead_letter_record(
    *,
    task: str,
    message_id: str,
    payload: Mapping[str, Any],
    headers: Mapping[str, Any],
    reason: str,
    attempts: int,
    correlation_id: str,
) -> DeadLetter:
    """Store a failed message durably; a message seen again updates its one record."""
    now = timezone.now()
    with transaction.atomic():
        existing = (
            DeadLetter.objects.select_for_update().filter(message_id=message_id).first()
            if message_id
            else None
        )
        if existing is not None:
            existing.reason = reason
            existing.attempts = max(existing.attempts, attempts)
            existing.last_failed_at = now
            existing.status = DeadLetter.Status.PENDING
            existing.save(update_fields=["reason", "attempts", "last_failed_at", "status"])
            letter = existing
        else:
            letter = DeadLetter.objects.create(
                task=task,
                message_id=message_id,
                payload=_jsonable(payload),
                headers=_jsonable(headers),
                reason=reason,
                attempts=attempts,
                correlation_id=correlation_id[:128],
                first_failed_at=now,
                last_failed_at=now,
            )
    logger.error(
        "dead letter %s: %s (%s) after %d attempt(s): %s",
        letter.pk,
        task or "undecodable message",
        message_id,
        attempts,
        reason,
    )
    return letter


def dead_letters_drain() -> int:
    """Move every message in RabbitMQ's dead-letter queue into DeadLetter records.

    Each message is acked only after its record committed, so a crash keeps it queued.
    Return the number of messages moved.
    """
    moved = 0
    with current_app.connection_for_read() as conn:
        queue = settings.EVENTS_DEAD_LETTER_QUEUES[0](conn.default_channel)
        queue.declare()
        while moved < DRAIN_BATCH_SIZE:
            message = queue.get(no_ack=False, accept=["json"])
            if message is None:
                break
            _record_broker_dead_letter(
                message.headers or {}, message.body or b"", message.properties
            )
            message.ack()
            moved += 1
    return moved


def declare_dead_letter_queue() -> None:
    """Declare the dead-letter queue, so rejects have somewhere to go from the start."""
    with current_app.connection_for_write() as conn:
        settings.EVENTS_DEAD_LETTER_QUEUES[0](conn.default_channel).declare()


def _record_broker_dead_letter(
    headers: Mapping[str, Any], body: bytes | str, properties: Mapping[str, Any]
) -> DeadLetter:
    raw = body.decode("utf-8", "replace") if isinstance(body, bytes) else body
    try:
        args, kwargs, _embed = json.loads(raw)
        payload: dict[str, Any] = {"args": list(args), "kwargs": dict(kwargs)}
    except (ValueError, TypeError):
        payload = {"raw": raw[:10_000]}
    deaths = headers.get("x-death") or [{}]
    first = deaths[0] if isinstance(deaths, list) and deaths else {}
    reason = str(headers.get("x-first-death-reason") or first.get("reason") or "rejected")
    attempts = int(headers.get("x-delivery-count") or first.get("count") or 1)
    task = str(headers.get("task") or "") if "raw" not in payload else ""
    return dead_letter_record(
        task=task,
        message_id=str(headers.get("id") or properties.get("correlation_id") or ""),
        payload=payload,
        headers=dict(headers),
        reason=f"rejected by the broker: {reason}",
        attempts=attempts,
        correlation_id=str(headers.get(CORRELATION_HEADER) or ""),
    )


def dead_letter_replay(*, dead_letter_id: int) -> DeadLetter:
    """Send a pending dead letter's message to its task again, with its correlation id.

    Raise InvalidInput for a letter already handled or one that has no task to run,
    BrokerUnavailable when the broker does not take the message (it stays pending).
    """
    with transaction.atomic():
        letter = DeadLetter.objects.select_for_update().filter(pk=dead_letter_id).first()
        if letter is None or letter.status != DeadLetter.Status.PENDING:
            raise InvalidInput(f"Dead letter {dead_letter_id} is not pending.")
        if not letter.task or "raw" in letter.payload:
            raise InvalidInput(f"Dead letter {dead_letter_id} has no decodable task to replay.")
        try:
            current_app.signature(
                letter.task,
                args=letter.payload.get("args", []),
                kwargs=letter.payload.get("kwargs", {}),
            ).apply_async(headers={CORRELATION_HEADER: letter.correlation_id})
        except BrokerError as exc:
            # Celery's publish retries are spent; the letter stays pending (rolled back).
            raise BrokerUnavailable(
                f"Dead letter {dead_letter_id} stays pending: the broker did not take it ({exc})."
            ) from exc
        letter.status = DeadLetter.Status.REPLAYED
        letter.resolved_at = timezone.now()
        letter.save(update_fields=["status", "resolved_at"])
    logger.info("dead letter %s replayed to %s", letter.pk, letter.task)
    return letter


def dead_letter_discard(*, dead_letter_id: int) -> DeadLetter:
    """Mark a pending dead letter as discarded; it stays listed for the record."""
    with transaction.atomic():
        letter = DeadLetter.objects.select_for_update().filter(pk=dead_letter_id).first()
        if letter is None or letter.status != DeadLetter.Status.PENDING:
            raise InvalidInput(f"Dead letter {dead_letter_id} is not pending.")
        letter.status = DeadLetter.Status.DISCARDED
        letter.resolved_at = timezone.now()
        letter.save(update_fields=["status", "resolved_at"])
    return letter


def _jsonable(value: Mapping[str, Any]) -> dict[str, Any]:
    """Return ``value`` as plain JSON types (broker headers hold dates and bytes)."""
    result: dict[str, Any] = json.loads(json.dumps(dict(value), default=str))
    return result
