"""Invalidations that outlive a Redis outage: recorded with the write, replayed once Redis answers.

A DEL sent to an unreachable Redis is lost, and the entry it meant to drop comes back
with Redis (a pause, a partition, a restart that loads its snapshot) and lives out its
TTL. So ``invalidate_on_commit`` writes a ``PendingInvalidation`` in the write's own
transaction: the record exists exactly when the write committed. The commit hook drops
the entries and deletes the record; a record still there was missed by Redis, and
``pending_invalidations_apply`` replays it (DEL and publish on ``cache:invalidate``,
then delete). Whoever notices Redis answering again replays first: a process before
its next Redis read after a gap of its own, its listener on the first answer, and the
beat task ``core.cache_pending_apply`` every ``CACHE_PENDING_SWEEP_SECONDS``.
"""

from __future__ import annotations

import logging

from django.db import DEFAULT_DB_ALIAS, DatabaseError, connections

from apps.core.cache.models import PendingInvalidation
from apps.core.cache.tiered import TieredCache

logger = logging.getLogger(__name__)

# Records replayed per round trip; a longer backlog takes several.
BATCH_SIZE = 500


def pending_invalidation_record(kind: str, idents: list[int | str], *, using: str) -> int:
    """Record that ``kind:id`` for each id must be dropped; return the record's id.

    Call inside the write's transaction, so the record commits (or not) with it.
    """
    return PendingInvalidation.objects.using(using).create(kind=kind, idents=idents).pk


def pending_invalidation_done(record_id: int, *, using: str) -> None:
    """Delete a record whose invalidation Redis has; a failure leaves it to a replay."""
    try:
        PendingInvalidation.objects.using(using).filter(pk=record_id).delete()
    except DatabaseError:
        # The drop itself happened; replaying it later again is harmless.
        logger.warning("Could not delete pending cache invalidation %s", record_id, exc_info=True)


def pending_invalidations_apply(cache: TieredCache, *, using: str = DEFAULT_DB_ALIAS) -> int:
    """Replay every recorded invalidation through ``cache``, then delete it; return how many.

    Raise RedisError when Redis does not take them (the records stay for the next try).
    """
    applied = 0
    records = PendingInvalidation.objects.using(using)
    while True:
        batch = list(records.order_by("pk").values_list("pk", "kind", "idents")[:BATCH_SIZE])
        if not batch:
            return applied
        cache.replay([(kind, list(idents)) for _, kind, idents in batch])
        records.filter(pk__in=[pk for pk, _, _ in batch]).delete()
        applied += len(batch)
        if len(batch) < BATCH_SIZE:
            return applied


class PendingInvalidationLog:
    """The records as the tiered cache replays them, from a request or its listener."""

    def apply(self, cache: TieredCache) -> int:
        """Replay every record through ``cache``; return how many."""
        return pending_invalidations_apply(cache)

    def apply_in_thread(self, cache: TieredCache) -> int:
        """Replay from the listener's thread, closing the connection that thread opened."""
        try:
            return pending_invalidations_apply(cache)
        finally:
            connections.close_all()
