"""Run a write at most once per ``Idempotency-Key`` and replay its first response.

Semantics (the contract's): the same key with the same body replays the first
response; with another body it is refused (422); while the first request is still in
flight a second one is refused (409) instead of waiting. Claim, work and stored
response share one transaction: the claim is a non-blocking transaction-scoped lock on
the key, so a concurrent request sees it at once, and a stored response always
describes a committed effect. A request that dies mid-flight leaves nothing behind.
The response is stored rendered, and replayed as those bytes with their Content-Type.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from django.db import transaction
from rest_framework.renderers import JSONRenderer

from apps.core.http.errors import Conflict, InvalidInput, Unprocessable
from apps.core.models import IdempotencyRecord

IDEMPOTENCY_HEADER = "Idempotency-Key"
# The one rendering of a stored response; the view sends exactly these bytes each time.
_RENDERER = JSONRenderer()
MAX_KEY_LENGTH = 255


@dataclass(frozen=True)
class IdempotentResult:
    """The response of an idempotent call, rendered, and whether it is a replay."""

    status: int
    body: bytes
    content_type: str
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

    ``action`` returns ``(status, data)`` and runs inside the one transaction that also
    claims the key and stores that response, rendered as DRF's JSON. If it raises,
    nothing commits, so the key is free again at once.
    """
    with transaction.atomic():
        replay = _claim(owner_id=owner_id, scope=scope, key=key, fingerprint=fingerprint)
        if replay is not None:
            return replay
        status, data = action()
        body = _RENDERER.render(data, _RENDERER.media_type, {})
        IdempotencyRecord.objects.create(
            owner_id=owner_id,
            scope=scope,
            key=key,
            request_hash=fingerprint,
            response_status=status,
            response_body=body,
            response_content_type=_RENDERER.media_type,
        )
    return IdempotentResult(
        status=status, body=body, content_type=_RENDERER.media_type, replayed=False
    )


def _claim(*, owner_id: int, scope: str, key: str, fingerprint: str) -> IdempotentResult | None:
    """Claim the key inside the current transaction.

    Return the stored response to replay, or None when the key is new. Raise Conflict
    while another request holds the key, Unprocessable when it was used with another body.
    """
    if not _try_lock(owner_id=owner_id, scope=scope, key=key):
        # Another transaction holds the key right now: refuse instead of waiting on it.
        raise Conflict()
    # Read after the lock: whoever held it before has committed or rolled back by now.
    existing = IdempotencyRecord.objects.filter(owner_id=owner_id, scope=scope, key=key).first()
    if existing is None:
        return None
    if existing.request_hash != fingerprint:
        raise Unprocessable(
            f"This {IDEMPOTENCY_HEADER} was already used with a different request body."
        )
    return IdempotentResult(
        status=existing.response_status,
        # A BinaryField reads back as a memoryview on PostgreSQL.
        body=bytes(existing.response_body),
        content_type=existing.response_content_type,
        replayed=True,
    )


def _try_lock(*, owner_id: int, scope: str, key: str) -> bool:
    """Take a transaction-scoped lock on the key without waiting; return whether it was free.

    On PostgreSQL an advisory lock on a 64-bit hash of the key (two keys sharing a hash
    at the same moment would see a spurious 409, odds about 2**-64). SQLite runs one
    write transaction at a time (``BEGIN IMMEDIATE``), so the key is already ours there.
    """
    conn = transaction.get_connection()
    if conn.vendor != "postgresql":
        return True
    digest = hashlib.blake2b(f"{owner_id}:{scope}:{key}".encode(), digest_size=8).digest()
    lock_id = int.from_bytes(digest, "big", signed=True)
    with conn.cursor() as cursor:
        cursor.execute("SELECT pg_try_advisory_xact_lock(%s)", [lock_id])
        row = cursor.fetchone()
    return bool(row and row[0])
