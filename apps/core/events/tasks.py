"""Periodic tasks of the event plumbing, scheduled by Celery beat (CELERY_BEAT_SCHEDULE)."""

from __future__ import annotations

from celery import shared_task

from apps.core.events.dead_letters import dead_letters_drain
from apps.core.events.outbox import outbox_sweep


@shared_task(name="core.outbox_sweep", ignore_result=True)
def outbox_sweep_task() -> int:
    """Publish outbox events that their commit hook left behind."""
    return outbox_sweep()


@shared_task(name="core.dead_letters_drain", ignore_result=True)
def dead_letters_drain_task() -> int:
    """Move messages from RabbitMQ's dead-letter queue into DeadLetter records."""
    return dead_letters_drain()
