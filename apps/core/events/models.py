"""The event plumbing's tables: the outbox, consumers' processed marks, dead letters.

They belong to the ``core`` app (its label names their tables).
"""

from __future__ import annotations

import uuid

from django.db import models
from django.db.models import Q
from django.utils import timezone
from django_prometheus.models import ExportModelOperationsMixin


class OutboxEvent(ExportModelOperationsMixin("outboxevent"), models.Model):  # type: ignore[misc]  # untyped mixin factory
    """An event written in the transaction that caused it, published after it commits.

    ``sent_at`` stays empty until the relay has handed the event to the broker (with
    publisher confirms), so an event is never lost when the broker is down and never
    invented by a transaction that rolled back.
    """

    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    event_type = models.CharField(max_length=64)
    correlation_id = models.CharField(max_length=128, blank=True)
    # The W3C ``traceparent`` of the span that wrote the event, so its consumers' spans
    # join that trace even when the periodic sweep publishes it later.
    traceparent = models.CharField(max_length=128, blank=True, default="")
    payload = models.JSONField()
    created_at = models.DateTimeField(default=timezone.now)
    sent_at = models.DateTimeField(null=True, blank=True)
    publish_attempts = models.PositiveIntegerField(default=0)
    # With sharding, the owner whose shard keeps this event (with the rows it describes,
    # so one transaction writes both); empty for an event of no owner.
    shard_key = models.BigIntegerField(null=True, blank=True)

    class Meta:
        indexes = [
            # The sweep's scan: only unsent events, oldest first.
            models.Index(
                fields=["created_at"],
                name="core_outbox_unsent_created",
                condition=Q(sent_at__isnull=True),
            ),
        ]

    def __str__(self) -> str:
        return f"{self.event_type} {self.id}"


class ProcessedEvent(models.Model):
    """The mark that ``consumer`` has applied event ``event_id``: a redelivery is a no-op."""

    event_id = models.UUIDField()
    consumer = models.CharField(max_length=128)
    processed_at = models.DateTimeField(default=timezone.now)

    class Meta:
        constraints = [
            models.UniqueConstraint(
                fields=["event_id", "consumer"], name="core_processed_event_consumer"
            ),
        ]

    def __str__(self) -> str:
        return f"{self.consumer} {self.event_id}"


class DeadLetter(ExportModelOperationsMixin("deadletter"), models.Model):  # type: ignore[misc]  # untyped mixin factory
    """A message that exhausted its retries, failed for good or could not be decoded."""

    class Status(models.TextChoices):
        PENDING = "pending", "Pending"
        REPLAYED = "replayed", "Replayed"
        DISCARDED = "discarded", "Discarded"

    task = models.CharField(max_length=200, blank=True)
    # The Celery task id of the failed message; one record per message, however many tries.
    message_id = models.CharField(max_length=255, blank=True)
    payload = models.JSONField(default=dict, blank=True)
    headers = models.JSONField(default=dict, blank=True)
    reason = models.TextField()
    attempts = models.PositiveIntegerField(default=1)
    correlation_id = models.CharField(max_length=128, blank=True)
    status = models.CharField(max_length=16, choices=Status.choices, default=Status.PENDING)
    first_failed_at = models.DateTimeField(default=timezone.now)
    last_failed_at = models.DateTimeField(default=timezone.now)
    resolved_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        constraints = [
            models.UniqueConstraint(
                fields=["message_id"],
                name="core_dead_letter_message_id",
                condition=~Q(message_id=""),
            ),
        ]
        indexes = [
            models.Index(fields=["status", "-last_failed_at"], name="core_dead_letter_status")
        ]

    def __str__(self) -> str:
        return f"{self.task or 'undecodable'} ({self.status})"
