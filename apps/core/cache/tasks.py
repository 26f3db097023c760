"""The cache's periodic task, scheduled by Celery beat (CELERY_BEAT_SCHEDULE)."""

from __future__ import annotations

import logging

from celery import shared_task

from apps.core.cache import tiered_cache
from apps.core.cache.pending import pending_invalidations_apply
from apps.core.redis_cluster import REDIS_ERRORS

logger = logging.getLogger(__name__)


@shared_task(name="core.cache_pending_apply", ignore_result=True)
def cache_pending_apply_task() -> int:
    """Replay invalidations Redis missed that no web process has replayed yet.

    The backstop for a gap no process noticed (a partition between one writer and
    Redis, say): records are replayed within ``CACHE_PENDING_SWEEP_SECONDS``.
    """
    try:
        return pending_invalidations_apply(tiered_cache())
    except REDIS_ERRORS as exc:
        logger.warning("Pending cache invalidations not replayed, Redis unreachable: %s", exc)
        return 0
