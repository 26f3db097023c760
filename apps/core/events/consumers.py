"""What every event consumer shares: one effect per event, bounded retries, dead letters.

A consumer task subclasses ``ReliableTask`` (``@shared_task(base=ReliableTask, ...)``)
and wraps its effect in ``consume_once``; a transient failure raises ``RetryableError``.
"""

from __future__ import annotations

import logging
import math
import random
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any
from uuid import UUID

from celery import Task
from celery.app.task import Context
from celery.worker.consumer import Consumer
from celery.worker.request import Request
from django.conf import settings
from django.db import connections, transaction
from django.utils import timezone
from kombu.message import Message

from apps.core.db.failures import is_connection_failure
from apps.core.db.remote import is_remote_server_failure
from apps.core.events.correlation import CORRELATION_HEADER
from apps.core.events.dead_letters import dead_letter_record
from apps.core.events.delayed_delivery import CELERY_STEP, CLUSTER_STEP
from apps.core.events.models import ProcessedEvent

logger = logging.getLogger(__name__)


class RetryableError(Exception):
    """A transient failure (timeout, 5xx): try again later with backoff."""


def backoff_delay(retries: int) -> int:
    """Return the whole seconds to wait before retry number ``retries + 1``.

    Exponential (base × 2ⁿ, capped) with up to 50 % added at random, so clients that
    failed together do not retry together; every delay is still longer than the last
    until the cap. Whole seconds because RabbitMQ's native delayed delivery counts them.
    """
    base: int = settings.EVENTS_RETRY_BACKOFF_SECONDS
    cap: int = settings.EVENTS_RETRY_BACKOFF_MAX_SECONDS
    delay: int = min(base * 2**retries, cap)
    jittered = delay * (1 + random.random() / 2)  # noqa: S311 -- jitter, not secrecy
    return min(math.ceil(jittered), cap)


class ReliableRequest(Request):
    """A task request whose hard time limit dead-letters it with its full context.

    At the hard limit Celery kills the pool process, calls the task's ``on_failure``
    in the worker's main process and acks the message (``acks_on_timeout`` defaults to
    on). No request context is pushed there, so ``on_failure`` would see neither the
    retry count nor the correlation id; pushing a context made from this request's
    message (``request_dict``: its headers, retries included) supplies them.
    """

    def on_timeout(self, soft: bool, timeout: float) -> None:
        if soft:
            super().on_timeout(soft, timeout)
            return
        self.task.request_stack.push(Context(self.request_dict))
        try:
            super().on_timeout(soft, timeout)
        finally:
            self.task.request_stack.pop()


class ReliableTask(Task[Any, Any]):
    """A task acked after it ran, retried with backoff, dead-lettered when it gives up."""

    acks_late = True
    reject_on_worker_lost = True
    # A task killed by its hard time limit is acked and kept as a DeadLetter: it hung
    # once, so running it again unattended would likely hang a process again.
    acks_on_timeout = True
    Request = "apps.core.events.consumers:ReliableRequest"

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        try:
            try:
                return super().__call__(*args, **kwargs)
            except Exception as exc:
                # A shard down or too slow is transient: the whole effect rolled back.
                if is_remote_server_failure(exc):
                    raise RetryableError(f"a database server did not answer: {exc}") from exc
                # So is the app's own database dropping the connection or cancelling the
                # statement (a failover, a restart, a deadlock): the effect rolled back with
                # its processed mark, so the retry applies it once. The broken connection
                # is closed here, and the retry opens a new one.
                if is_connection_failure(exc):
                    for connection in connections.all(initialized_only=True):
                        connection.close_if_unusable_or_obsolete()
                    raise RetryableError(f"the database failed: {exc}") from exc
                raise
        except RetryableError as exc:
            max_retries: int = settings.EVENTS_MAX_RETRIES
            if self.request.called_directly or self.request.retries >= max_retries:
                raise
            delay = backoff_delay(self.request.retries)
            logger.warning(
                "%s: attempt %d failed (%s); retrying in %d s",
                self.name,
                self.request.retries + 1,
                exc,
                delay,
            )
            raise self.retry(exc=exc, countdown=delay, max_retries=max_retries) from exc

    def on_failure(self, exc: Exception, task_id: str, args: Any, kwargs: Any, einfo: Any) -> None:
        """Keep the message as a dead letter: retries ran out or the error is permanent."""
        dead_letter_record(
            task=self.name,
            message_id=task_id,
            payload={"args": list(args or []), "kwargs": dict(kwargs or {})},
            headers={CORRELATION_HEADER: self.request.get(CORRELATION_HEADER) or ""},
            reason=f"{type(exc).__name__}: {exc}",
            attempts=self.request.retries + 1,
            correlation_id=self.request.get(CORRELATION_HEADER) or "",
        )


@contextmanager
def consume_once(*, event_id: str | UUID, consumer: str) -> Iterator[bool]:
    """Open a transaction that applies ``consumer``'s effect of ``event_id`` at most once.

    Yield True when the effect is to be applied now, False when it already was. The
    processed-event mark commits with the effect, or neither does; a concurrent
    redelivery waits on the mark's unique index and then sees it.
    """
    with transaction.atomic():
        if not _mark_processed(event_id=event_id, consumer=consumer):
            logger.info("%s: event %s already processed; skipping", consumer, event_id)
            yield False
            return
        yield True


def _mark_processed(*, event_id: str | UUID, consumer: str) -> bool:
    """Insert the processed mark; return False when it exists (one statement, no savepoint)."""
    table = ProcessedEvent._meta.db_table
    conn = transaction.get_connection()
    with conn.cursor() as cursor:
        cursor.execute(
            f"INSERT INTO {conn.ops.quote_name(table)} (event_id, consumer, processed_at) "  # noqa: S608 -- the table name is the model's
            "VALUES (%s, %s, %s) ON CONFLICT DO NOTHING RETURNING id",
            [
                _uuid_value(event_id, conn.vendor),
                consumer,
                conn.ops.adapt_datetimefield_value(timezone.now()),
            ],
        )
        return cursor.fetchone() is not None


def _uuid_value(event_id: str | UUID, vendor: str) -> UUID | str:
    value = event_id if isinstance(event_id, UUID) else UUID(str(event_id))
    # SQLite keeps a UUIDField as 32 hex characters.
    return value.hex if vendor != "postgresql" else value


class DeadLetteringConsumer(Consumer):
    """The worker's consumer, rejecting undecodable messages to the dead-letter exchange.

    Celery acks such a message (it is gone); rejecting without requeue routes it to the
    queue's dead-letter exchange, where ``dead_letters_drain`` keeps it. Its delayed
    delivery is set up once per cluster, not once per URL (apps/core/events/delayed_delivery.py).
    """

    # celery-types types Consumer.Blueprint as an attribute; at run time it is the class.
    class Blueprint(Consumer.Blueprint):  # type: ignore[misc,valid-type]
        default_steps = [
            CLUSTER_STEP if step == CELERY_STEP else step
            for step in Consumer.Blueprint.default_steps
        ]

    def on_decode_error(self, message: Message, exc: Exception) -> None:
        logger.error(
            "undecodable message (%s, content type %s) sent to the dead-letter queue",
            exc,
            message.content_type,
        )
        message.reject(requeue=False)
