"""The transactional outbox: write events with the data that caused them, publish after commit.

``outbox_write`` must run inside the caller's transaction; the event row commits or rolls
back with it. On commit the event's id goes to this process's relay thread, which
publishes it with publisher confirms and marks it sent, so the request never waits on
the broker; whatever is left behind (broker down, process killed between commit and
publish) is published by ``outbox_sweep``, which Celery beat runs every
``OUTBOX_SWEEP_SECONDS``. Publishing is at least once; consumers make it exactly once in
effect with a processed-event record. Without a broker (eager tasks) the consumers run
in-process right after the commit instead.
"""

from __future__ import annotations

import atexit
import logging
import threading
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from datetime import datetime, timedelta
from typing import Any
from uuid import UUID

from celery import current_app
from django.conf import settings
from django.db import DatabaseError, connection, connections, transaction
from django.db.models import F, QuerySet
from django.utils import timezone
from kombu import Producer
from opentelemetry import context as otel_context
from opentelemetry import propagate

from apps.core.breaker import CircuitBreaker
from apps.core.db.remote import foreign_partitions, is_remote_server_failure
from apps.core.events.correlation import CORRELATION_HEADER
from apps.core.events.models import OutboxEvent
from apps.core.events.routing import consumer_kwargs, events
from apps.core.forks import ProcessLocal
from apps.core.http.request_context import current_request_id

logger = logging.getLogger(__name__)

SWEEP_BATCH_SIZE = 500
# Events the relay publishes per transaction and per wait for the broker's confirms.
RELAY_BATCH_SIZE = 200
# Events a relay holds at most; beyond that it leaves new ones to the sweep.
RELAY_MAX_PENDING = 10_000
# The relay closes its database connection after this long without events.
RELAY_IDLE_SECONDS = 0.5
# How long a batch waits for RabbitMQ's publisher confirms before it counts as failed.
CONFIRM_TIMEOUT_SECONDS = 10.0

# Open for OUTBOX_PUBLISH_BACKOFF_SECONDS after a failed publish: commits then leave
# their events to the sweep instead of trying a broker that just failed.
_breakers: ProcessLocal[CircuitBreaker] = ProcessLocal(
    lambda: CircuitBreaker("outbox publish", reset_seconds=settings.OUTBOX_PUBLISH_BACKOFF_SECONDS)
)


def outbox_breaker() -> CircuitBreaker:
    """Return this process's breaker over publishing after commit."""
    return _breakers.get()


def outbox_write(
    *, event_type: str, payload: Mapping[str, Any], shard_key: int | None = None
) -> OutboxEvent:
    """Record an event in the current transaction and publish it once that commits.

    The event keeps the correlation id and the trace context of its writer, so whoever
    publishes it (the relay or, later, the sweep) continues the writer's trace. Raise
    RuntimeError outside a transaction: an event written on its own could describe data
    that never commits. Raise ValueError for an event type no app registered, or a
    payload whose fields are not the type's: its consumers could not be called with it.
    ``shard_key`` (the owner of the rows the event describes) keeps the event on their
    shard when orders are sharded.
    """
    _check_writable(event_type, [payload])
    event = OutboxEvent.objects.create(
        event_type=event_type,
        payload=dict(payload),
        shard_key=shard_key,
        correlation_id=current_request_id() or "",
        traceparent=_current_traceparent(),
    )
    transaction.on_commit(lambda: outbox_publish_after_commit(event), robust=True)
    return event


def outbox_write_many(
    *,
    event_type: str,
    payloads: Sequence[Mapping[str, Any]],
    shard_keys: Sequence[int | None] | None = None,
) -> list[OutboxEvent]:
    """Record one event per payload with one INSERT, as ``outbox_write`` does for one.

    ``shard_keys``, when given, holds each payload's shard key, in the same order.
    For bulk writers (demo data): the events are published after the commit together,
    each as the relay would publish it. Raise as ``outbox_write`` does.
    """
    _check_writable(event_type, payloads)
    correlation_id = current_request_id() or ""
    traceparent = _current_traceparent()
    written = OutboxEvent.objects.bulk_create(
        [
            OutboxEvent(
                event_type=event_type,
                payload=dict(payload),
                correlation_id=correlation_id,
                traceparent=traceparent,
                shard_key=key,
            )
            for payload, key in zip(payloads, shard_keys or [None] * len(payloads), strict=True)
        ]
    )

    def publish() -> None:
        for event in written:
            outbox_publish_after_commit(event)

    if written:
        transaction.on_commit(publish, robust=True)
    return written


def _check_writable(event_type: str, payloads: Iterable[Mapping[str, Any]]) -> None:
    if not transaction.get_connection().in_atomic_block:
        raise RuntimeError("outbox_write() must run inside the transaction it describes.")
    declared = events.get(event_type)
    if declared is None:
        raise ValueError(f"No app registered the event type {event_type!r}.")
    for payload in payloads:
        if sorted(payload) != sorted(declared.fields):
            raise ValueError(
                f"A {event_type} payload has the fields {sorted(declared.fields)}, "
                f"not {sorted(payload)}."
            )


def outbox_publish_after_commit(event: OutboxEvent) -> None:
    """Hand one just-committed event to the relay, unless the broker failed a moment ago."""
    if not outbox_breaker().allow():
        return
    if current_app.conf.task_always_eager:
        # No broker: the consumers run right here, as the commit's follow-up.
        outbox_publish(event_ids=[event.pk], shard_keys=[event.shard_key])
        return
    _relays.get().submit(event)


def outbox_relay_flush(timeout: float = 10.0) -> bool:
    """Wait until this process's relay has handled every event handed to it.

    Return False when it is still busy after ``timeout`` seconds.
    """
    return _relays.get().flush(timeout)


def outbox_relay_close(timeout: float = 10.0) -> bool:
    """Flush this process's relay, then stop its thread and close its broker connection.

    The next commit starts a new relay, on a new connection. Return False when events
    were still unpublished after ``timeout`` seconds (the sweep publishes them).
    """
    relay = _relays.set(None)
    return relay.close(timeout) if relay is not None else True


def outbox_sweep(*, min_age_seconds: float | None = None) -> int:
    """Publish every unsent event older than ``min_age_seconds``; return how many went out.

    The age keeps the sweep off events whose relay is publishing them. When the outbox
    is partitioned over foreign servers (sharded orders), each server's partitions are
    swept apart, so a server that is down holds back only the events it keeps.
    """
    age = settings.OUTBOX_SWEEP_MIN_AGE_SECONDS if min_age_seconds is None else min_age_seconds
    cutoff = timezone.now() - timedelta(seconds=age)
    using = OutboxEvent.objects.db
    servers = foreign_partitions(OutboxEvent._meta.db_table, using)
    if not servers:
        return _sweep(lambda: _unsent(cutoff))
    sent = 0
    for server, partitions in servers.items():
        try:
            sent += _sweep(lambda: _unsent_in(using, partitions, cutoff))  # noqa: B023 -- called here
        except DatabaseError as error:
            if not is_remote_server_failure(error):
                raise
            logger.warning("outbox sweep: %s did not answer; its events wait for it", server)
        if not outbox_breaker().allow():
            break  # the broker failed: the other servers' events wait for the next sweep
    return sent


def _sweep(unsent: Callable[[], list[tuple[UUID, int | None]]]) -> int:
    sent = 0
    while True:
        batch = unsent()
        if not batch:
            return sent
        published = outbox_publish(
            event_ids=[pk for pk, _ in batch], shard_keys=[key for _, key in batch]
        )
        sent += published
        if published < len(batch):
            return sent


def _unsent(cutoff: datetime) -> list[tuple[UUID, int | None]]:
    return list(
        OutboxEvent.objects.filter(sent_at__isnull=True, created_at__lte=cutoff)
        .order_by("created_at")
        .values_list("id", "shard_key")[:SWEEP_BATCH_SIZE]
    )


def _unsent_in(
    using: str, partitions: Sequence[str], cutoff: datetime
) -> list[tuple[UUID, int | None]]:
    """The oldest unsent events of these partitions: a statement only their server answers."""
    db = connections[using]
    scans = " UNION ALL ".join(
        f"SELECT id, shard_key, created_at FROM {db.ops.quote_name(name)}"  # noqa: S608 -- catalog names, quoted
        " WHERE sent_at IS NULL AND created_at <= %s"
        for name in partitions
    )
    # Its own transaction, or a savepoint inside the caller's: a failed read leaves it usable.
    with transaction.atomic(using=using), db.cursor() as cursor:
        cursor.execute(
            f"SELECT id, shard_key FROM ({scans}) unsent ORDER BY created_at LIMIT %s",  # noqa: S608
            [*([cutoff] * len(partitions)), SWEEP_BATCH_SIZE],
        )
        return [(UUID(str(pk)), key) for pk, key in cursor.fetchall()]


def outbox_publish(*, event_ids: Iterable[UUID], shard_keys: Iterable[int | None] = ()) -> int:
    """Publish the given unsent events to their consumers and mark them sent.

    The events are locked with SKIP LOCKED while they are published, so two sweeps
    never publish one event at the same time; they are marked sent only once the broker
    confirmed every message. On a broker error nothing is marked sent (the
    sweep retries later, the consumers drop what did arrive twice) and ``outbox_breaker``
    opens. ``shard_keys``, the events' shard keys when known, keep every statement on
    their shards when orders are sharded. Return the number of events published.
    """
    wanted = list(event_ids)
    if not wanted:
        return 0
    keys = list(shard_keys)
    with transaction.atomic():
        events = list(
            _events(wanted, keys)
            .select_for_update(skip_locked=True)
            .filter(sent_at__isnull=True)
            .order_by("created_at")
        )
        if not events:
            return 0
        pks = [event.pk for event in events]
        try:
            _send_confirmed(events)
        except Exception:
            # Any broker failure: the events stay unsent and the sweep retries them later.
            logger.warning("outbox: publishing %d event(s) failed", len(events), exc_info=True)
            _events(pks, keys).update(publish_attempts=F("publish_attempts") + 1)
            outbox_breaker().failed()
            return 0
        _events(pks, keys).update(
            sent_at=timezone.now(), publish_attempts=F("publish_attempts") + 1
        )
    outbox_breaker().succeeded()
    return len(events)


def _publish_committed(events: list[OutboxEvent]) -> int:
    """Publish events just committed by this process, as the relay does; return how many.

    No row lock and no read: the relay has the events in memory and the sweep leaves
    events this young alone. Should the relay lag past OUTBOX_SWEEP_MIN_AGE_SECONDS the
    sweep may publish an event too, which the consumers' processed marks absorb.
    """
    pks = [event.pk for event in events]
    keys = [event.shard_key for event in events]
    try:
        _send_confirmed(events)
    except Exception:
        logger.warning("outbox: publishing %d event(s) failed", len(events), exc_info=True)
        _events(pks, keys).update(publish_attempts=F("publish_attempts") + 1)
        outbox_breaker().failed()
        return 0
    _events(pks, keys).filter(sent_at__isnull=True).update(
        sent_at=timezone.now(), publish_attempts=F("publish_attempts") + 1
    )
    outbox_breaker().succeeded()
    return len(events)


def _events(pks: list[UUID], shard_keys: list[int | None]) -> QuerySet[OutboxEvent]:
    """Return the events with these ids, also by their shard keys when every one is known.

    Sharded, the outbox is partitioned by shard key: a statement by id alone asks every
    shard (and fails while one is down); with the keys it asks only theirs.
    """
    events = OutboxEvent.objects.filter(pk__in=pks)
    if shard_keys and None not in shard_keys:
        events = events.filter(shard_key__in=set(shard_keys))
    return events


def _send_confirmed(events: list[OutboxEvent]) -> None:
    """Send every event and wait for the broker's confirms, on a fresh channel if need be."""
    publisher = _publisher()
    for attempt in (1, 2):
        # A connection that sat idle may have been dropped by the broker: one retry on a
        # new one tells that apart from a broker that is really down.
        reused = publisher.is_open()
        try:
            for event in events:
                _send(event)
            publisher.confirm(CONFIRM_TIMEOUT_SECONDS)
        except Exception:
            publisher.reset()
            if not reused or attempt == 2:
                raise
        else:
            return


def _send(event: OutboxEvent) -> None:
    """Send one message per consumer task of the event's type, in the event's trace."""
    declared = events.get(event.event_type)
    consumers = declared.consumers if declared is not None else ()
    if not consumers:
        logger.warning("outbox: no consumer for event type %s", event.event_type)
    headers = {CORRELATION_HEADER: event.correlation_id}
    kwargs = consumer_kwargs(event.id, event.payload)
    token = None
    if event.traceparent:
        token = otel_context.attach(propagate.extract({"traceparent": event.traceparent}))
    try:
        for consumer in consumers:
            _publisher().publish(consumer.task, kwargs=kwargs, headers=headers)
    finally:
        if token is not None:
            otel_context.detach(token)


def _current_traceparent() -> str:
    carrier: dict[str, str] = {}
    propagate.inject(carrier)
    return carrier.get("traceparent", "")


class _ConfirmingPublisher:
    """Publish task messages on one channel in confirm mode; await the confirms per batch.

    Celery's own producer waits for each message's confirm in turn; RabbitMQ confirms
    a quorum queue's message once it is on disk, so waiting once for a whole batch
    saves a disk flush per message.
    """

    def __init__(self) -> None:
        self._connection: Any = None
        self._producer: Producer | None = None
        self._published = 0
        self._unconfirmed: set[int] = set()
        self._nacked = False

    def is_open(self) -> bool:
        return self._producer is not None

    def publish(self, task_name: str, *, kwargs: dict[str, Any], headers: dict[str, str]) -> None:
        if current_app.conf.task_always_eager:
            # Runs in-process; retry=False: a broker that is down fails now.
            signature = current_app.signature(task_name, kwargs=kwargs)
            signature.apply_async(headers=headers, retry=False)
            return
        producer = self._open()
        current_app.send_task(
            task_name,
            kwargs=kwargs,
            headers=headers,
            producer=producer,
            retry=False,
            add_to_parent=False,
        )
        self._published += 1
        self._unconfirmed.add(self._published)

    def confirm(self, timeout: float) -> None:
        """Return once the broker confirmed every message; raise if it refused or is silent."""
        deadline = time.monotonic() + timeout
        while self._unconfirmed and not self._nacked:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise TimeoutError(f"{len(self._unconfirmed)} message(s) not confirmed")
            self._connection.drain_events(timeout=remaining)
        if self._nacked:
            self._nacked = False
            raise RuntimeError("the broker refused (nacked) a message")

    def reset(self) -> None:
        connection, self._connection, self._producer = self._connection, None, None
        self._unconfirmed.clear()
        self._nacked = False
        if connection is not None:
            try:
                connection.close()
            except Exception:  # noqa: BLE001 -- a broken connection may fail to close
                logger.debug("outbox: closing the broker connection failed", exc_info=True)

    def _open(self) -> Producer:
        if self._producer is not None:
            return self._producer
        # Confirms are awaited per batch here, not per message by the transport; no
        # heartbeats, because nothing would send them while the relay is idle.
        connection = current_app.connection_for_write(
            transport_options={"confirm_publish": False}, heartbeat=0
        )
        channel: Any = connection.default_channel
        channel.confirm_select()
        channel.events["basic_ack"].add(self._on_ack)
        channel.events["basic_nack"].add(self._on_nack)
        self._connection = connection
        self._published = 0
        self._unconfirmed.clear()
        self._producer = Producer(channel)
        return self._producer

    def _on_ack(self, delivery_tag: int, multiple: bool) -> None:
        if multiple:
            self._unconfirmed = {tag for tag in self._unconfirmed if tag > delivery_tag}
        else:
            self._unconfirmed.discard(delivery_tag)

    def _on_nack(self, delivery_tag: int, multiple: bool) -> None:
        self._nacked = True
        self._on_ack(delivery_tag, multiple)


# A channel is not safe to share between threads: one publisher per thread and process.
_publishers: ProcessLocal[threading.local] = ProcessLocal(threading.local)


def _publisher() -> _ConfirmingPublisher:
    """Return this thread's publisher."""
    local = _publishers.get()
    publisher: _ConfirmingPublisher | None = getattr(local, "publisher", None)
    if publisher is None:
        publisher = local.publisher = _ConfirmingPublisher()
    return publisher


class _Relay:
    """A thread per process that publishes committed events in batches, off the request."""

    def __init__(self) -> None:
        self._condition = threading.Condition()
        self._pending: list[OutboxEvent] = []
        self._busy = False
        self._closing = False
        self._thread: threading.Thread | None = None

    def submit(self, event: OutboxEvent) -> None:
        with self._condition:
            if self._thread is None or not self._thread.is_alive():
                self._thread = threading.Thread(target=self._run, name="outbox-relay", daemon=True)
                self._thread.start()
            if len(self._pending) >= RELAY_MAX_PENDING:
                # Far behind (a slow broker): the sweep publishes this one instead.
                return
            self._pending.append(event)
            self._condition.notify()

    def flush(self, timeout: float) -> bool:
        deadline = time.monotonic() + timeout
        with self._condition:
            while self._pending or self._busy:
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    return False
                self._condition.wait(remaining)
        return True

    def close(self, timeout: float) -> bool:
        flushed = self.flush(timeout)
        with self._condition:
            self._closing = True
            self._pending.clear()
            self._condition.notify_all()
            thread = self._thread
        if thread is not None:
            thread.join(timeout)
        return flushed

    def _run(self) -> None:
        try:
            while True:
                batch = self._next_batch()
                if batch is None:
                    if self._closing:
                        return
                    # Idle: free the database connection (and let test databases be dropped).
                    connection.close()
                    continue
                try:
                    if outbox_breaker().allow():
                        _publish_committed(batch)
                except Exception:
                    # A database error: these events stay unsent for the sweep.
                    logger.exception("outbox relay: publishing %d event(s) failed", len(batch))
                    connection.close()
                finally:
                    with self._condition:
                        self._busy = False
                        self._condition.notify_all()
        finally:
            _publisher().reset()
            connection.close()

    def _next_batch(self) -> list[OutboxEvent] | None:
        with self._condition:
            if not self._pending and not self._closing:
                self._condition.wait(RELAY_IDLE_SECONDS)
            if not self._pending:
                return None
            batch = self._pending[:RELAY_BATCH_SIZE]
            del self._pending[:RELAY_BATCH_SIZE]
            self._busy = True
            return batch


# A forked child (gunicorn or Celery pool process) starts with no relay thread; it makes
# its own relay on first use and never publishes its parent's pending events.
_relays: ProcessLocal[_Relay] = ProcessLocal(_Relay)
atexit.register(outbox_relay_close, 2.0)
