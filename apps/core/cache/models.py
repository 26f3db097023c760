"""The durable record of an invalidation that Redis has not confirmed yet."""

from __future__ import annotations

from django.db import models


class PendingInvalidation(models.Model):
    """Cached entries ``kind:id`` (for each id) that a committed write made stale.

    Written in the transaction of the write, so it exists exactly when the write
    committed; deleted once Redis has dropped the entries and the drop was broadcast.
    A row that outlives its commit is an invalidation Redis missed (it was unreachable,
    or the process died first): ``pending_invalidations_apply`` replays it.
    """

    kind = models.CharField(max_length=64)
    idents = models.JSONField()
    created_at = models.DateTimeField(auto_now_add=True)

    def __str__(self) -> str:
        return f"{self.kind}:{self.idents}"
