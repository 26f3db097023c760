"""The core app's models: idempotent requests here.

The event plumbing's are in ``events.models``, the cache's pending invalidations in
``cache.models``.
"""

from __future__ import annotations

from django.conf import settings
from django.db import models


class IdempotencyRecord(models.Model):
    """The first outcome of a request made with an ``Idempotency-Key``.

    One row per (owner, scope, key), written in the transaction of the work it
    describes, so a row always holds the response of committed work. The body is kept
    as the bytes first sent, so a replay is byte for byte the same response.
    """

    owner = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE)
    scope = models.CharField(max_length=64)
    key = models.CharField(max_length=255)
    request_hash = models.CharField(max_length=64)
    response_status = models.PositiveSmallIntegerField()
    response_body = models.BinaryField()
    response_content_type = models.CharField(max_length=100)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        constraints = [
            models.UniqueConstraint(
                fields=["owner", "scope", "key"], name="core_idempotency_owner_scope_key"
            ),
        ]

    def __str__(self) -> str:
        return f"{self.scope}:{self.key} ({self.response_status})"


# Django finds an app's models through its models module.
from apps.core.cache.models import PendingInvalidation  # noqa: E402
from apps.core.events.models import DeadLetter, OutboxEvent, ProcessedEvent  # noqa: E402

__all__ = [
    "DeadLetter",
    "IdempotencyRecord",
    "OutboxEvent",
    "PendingInvalidation",
    "ProcessedEvent",
]
