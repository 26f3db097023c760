"""Run a write at most once per ``Idempotency-Key`` and replay its first response.

Semantics (the contract's): the same key with the same body replays the first
response; with another body it is refused (422); while the first request is still in
flight a second one is refused (409) instead of waiting. The claim is committed in its
own short transaction before the work starts, which is what lets a concurrent request
see it; the work and the stored response commit together, so a stored response always
describes a committed effect.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from django.conf import settings
from django.db import IntegrityError, transaction
from django.utils import timezone

from apps.core.errors import Conflict, InvalidInput, Unprocessable
from apps.core.models import IdempotencyRecord

IDEMPOTENCY_HEADER = "Idempotency-Key"
MAX_KEY_LENGTH = 255


@dataclass(frozen=True)
class IdempotentResult:
    """The response of an idempotent call and whether it is a replay."""

    status: int
    body: Any
    replayed: bool


def validate_idempotency_key(raw: str | None) -> str:
    """Return the key, or raise InvalidInput when it is missing or malformed."""
    if raw is None or not raw.strip():
        raise InvalidInput(
            f"The {IDEMPOTENCY_HEADER} header is required.",
            errors={IDEMPOTENCY_HEADER: ["This header is required."]},
        )
    key = raw.strip()
    if len(key) > MAX_KEY_LENGTH or not key.isprintable():
        raise InvalidInput(
            f"The {IDEMPOTENCY_HEADER} header is malformed.",
            errors={IDEMPOTENCY_HEADER: [f"Use at most {MAX_KEY_LENGTH} printable characters."]},
        )
    return key


def request_fingerprint(payload: Any) -> str:
    """Return a digest of the parsed body, insensitive to key order and whitespace."""
    canonical = json.dumps(payload, sort_keys=True, separators=(",", ":"), default=str)
    return hashlib.sha256(canonical.encode()).hexdigest()


def run_idempotent(
    *,
    owner_id: int,
    scope: str,
    key: str,
    fingerprint: str,
    action: Callable[[], tuple[int, Any]],
) -> IdempotentResult:
    """Run ``action`` once for (owner, scope, key), or replay what it returned before.

    ``action`` returns ``(status, body)`` and runs inside the transaction that also
    stores that response. If it raises, the claim is released so the key can be used
    again: nothing was committed.
    """
    claimed = _claim(owner_id=owner_id, scope=scope, key=key, fingerprint=fingerprint)
    if isinstance(claimed, IdempotentResult):
        return claimed
    record = claimed
    try:
        with transaction.atomic():
            status, body = action()
            IdempotencyRecord.objects.filter(pk=record.pk).update(
                state=IdempotencyRecord.State.COMPLETED,
                response_status=status,
                response_body=body,
            )
    except BaseException:
        IdempotencyRecord.objects.filter(
            pk=record.pk, state=IdempotencyRecord.State.IN_FLIGHT
        ).delete()
        raise
    return IdempotentResult(status=status, body=body, replayed=False)


def _claim(
    *, owner_id: int, scope: str, key: str, fingerprint: str
) -> IdempotencyRecord | IdempotentResult:
    """Claim the key for this request, or return the stored response to replay."""
    lease = timedelta(seconds=settings.IDEMPOTENCY_LEASE_SECONDS)
    # A record deleted by a failed first request between our insert and our read makes
    # the insert worth one more try; more than a few rounds means heavy contention.
    for _ in range(3):
        now = timezone.now()
        try:
            with transaction.atomic():
                record = IdempotencyRecord.objects.create(
                    owner_id=owner_id,
                    scope=scope,
                    key=key,
                    request_hash=fingerprint,
                    lease_expires_at=now + lease,
                )
        except IntegrityError:
            existing = IdempotencyRecord.objects.filter(
                owner_id=owner_id, scope=scope, key=key
            ).first()
            if existing is None:
                continue
            if existing.request_hash != fingerprint:
                raise Unprocessable(
                    f"This {IDEMPOTENCY_HEADER} was already used with a different request body."
                ) from None
            if existing.state == IdempotencyRecord.State.COMPLETED:
                return IdempotentResult(
                    status=existing.response_status or 200,
                    body=existing.response_body,
                    replayed=True,
                )
            if existing.lease_expires_at <= now and _take_over(existing, now + lease):
                return existing
            raise Conflict() from None
        else:
            return record
    raise Conflict()


def _take_over(record: IdempotencyRecord, lease_until: datetime) -> bool:
    """Take over the expired lease of a request that never finished."""
    taken = IdempotencyRecord.objects.filter(
        pk=record.pk,
        state=IdempotencyRecord.State.IN_FLIGHT,
        lease_expires_at=record.lease_expires_at,
    ).update(lease_expires_at=lease_until)
    return taken == 1
