"""The transactional outbox: no phantom events, no lost ones."""

from __future__ import annotations

import threading

import pytest
from celery import current_app
from celery.signals import before_task_publish
from django.db import transaction

from apps.core.events.models import OutboxEvent
from apps.core.events.outbox import (
    outbox_breaker,
    outbox_publish,
    outbox_relay_close,
    outbox_relay_flush,
    outbox_sweep,
    outbox_write,
    outbox_write_many,
)
from apps.core.events.routing import Consumer, EventType, register_events
from deploy.local.processes import free_port

# Event types of these tests only. ``test.happened`` reaches no task, so publishing it
# touches nothing else; ``test.consumed`` sends one message, to a no-op test task.
register_events(
    EventType("test.happened", fields=("n",)),
    EventType(
        "test.consumed",
        fields=("n",),
        consumers=(Consumer("tests.outbox_consumer", queue="default"),),
    ),
)


@pytest.fixture
def unreachable_broker():
    """Send this process's next broker connections to a port nothing listens on.

    The relay is closed first, so its next connection is a new one to that port.
    """
    conf = current_app.conf
    reachable = conf.broker_write_url
    outbox_relay_close()
    conf.update(broker_write_url=f"amqp://guest:guest@127.0.0.1:{free_port()}//")
    yield
    outbox_relay_close()
    conf.update(broker_write_url=reachable)
    outbox_breaker().reset()


@pytest.mark.django_db(transaction=True)
def test_rolled_back_transaction_leaves_no_event():
    def place_and_fail() -> None:
        with transaction.atomic():
            outbox_write(event_type="test.happened", payload={"n": 1})
            raise RuntimeError("boom")

    with pytest.raises(RuntimeError, match="boom"):
        place_and_fail()

    assert not OutboxEvent.objects.exists()


@pytest.mark.django_db(transaction=True)
def test_committed_transaction_leaves_exactly_one_sent_event():
    with transaction.atomic():
        written = outbox_write(event_type="test.happened", payload={"n": 2})
    # The commit hands the event to this process's relay thread, which publishes it.
    assert outbox_relay_flush()

    event = OutboxEvent.objects.get()
    assert event.pk == written.pk
    assert event.payload == {"n": 2}
    assert event.sent_at is not None
    assert event.publish_attempts == 1
    assert outbox_sweep(min_age_seconds=0) == 0


@pytest.fixture
def published():
    """Record (thread name, event id) of every task message this process publishes."""
    seen: list[tuple[str, str]] = []

    def record(body, **_):
        seen.append((threading.current_thread().name, body[1]["event_id"]))

    before_task_publish.connect(record, weak=False)
    yield seen
    before_task_publish.disconnect(record)


@pytest.mark.django_db(transaction=True)
def test_commit_hands_the_event_to_the_relay_thread_instead_of_publishing_inline(published):
    with transaction.atomic():
        written = outbox_write(event_type="test.consumed", payload={"n": 6})
    assert outbox_relay_flush()

    assert published == [("outbox-relay", str(written.pk))]
    assert OutboxEvent.objects.get().sent_at is not None


@pytest.mark.django_db(transaction=True)
def test_relay_publishes_a_burst_of_commits_each_exactly_once(published):
    written = []
    for n in range(60):
        with transaction.atomic():
            written.append(str(outbox_write(event_type="test.consumed", payload={"n": n}).pk))
    assert outbox_relay_flush()

    assert sorted(event_id for _, event_id in published) == sorted(written)
    assert OutboxEvent.objects.filter(sent_at__isnull=True).count() == 0
    assert set(OutboxEvent.objects.values_list("publish_attempts", flat=True)) == {1}
    assert outbox_sweep(min_age_seconds=0) == 0


@pytest.mark.django_db(transaction=True)
def test_a_bulk_write_publishes_every_event_once_after_its_commit(published):
    with transaction.atomic():
        written = outbox_write_many(
            event_type="test.consumed", payloads=[{"n": n} for n in range(25)]
        )
        assert published == []
    assert outbox_relay_flush()

    assert sorted(event_id for _, event_id in published) == sorted(str(e.pk) for e in written)
    assert sorted(e.payload["n"] for e in OutboxEvent.objects.filter(sent_at__isnull=False)) == (
        list(range(25))
    )


@pytest.mark.django_db(transaction=True)
def test_a_bulk_write_with_one_wrong_payload_writes_nothing():
    with pytest.raises(ValueError, match="payload has the fields"), transaction.atomic():
        outbox_write_many(event_type="test.happened", payloads=[{"n": 1}, {"m": 2}])

    with pytest.raises(RuntimeError, match="inside the transaction"):
        outbox_write_many(event_type="test.happened", payloads=[{"n": 1}])
    assert not OutboxEvent.objects.exists()


@pytest.mark.django_db(transaction=True)
def test_outbox_write_outside_a_transaction_is_refused():
    with pytest.raises(RuntimeError, match="inside the transaction"):
        outbox_write(event_type="test.happened", payload={"n": 0})

    assert not OutboxEvent.objects.exists()


@pytest.mark.django_db(transaction=True)
def test_event_left_unsent_by_a_broker_failure_is_published_by_the_sweep(unreachable_broker):
    with transaction.atomic():
        outbox_write(event_type="test.consumed", payload={"n": 3})
    assert outbox_relay_flush()
    event = OutboxEvent.objects.get()
    assert event.sent_at is None
    assert event.publish_attempts == 1

    # The broker is back: this thread's connection goes to the real one.
    current_app.conf.update(broker_write_url=current_app.conf.broker_url)
    assert outbox_sweep(min_age_seconds=0) == 1

    event.refresh_from_db()
    assert event.sent_at is not None
    assert event.publish_attempts == 2
    assert outbox_sweep(min_age_seconds=0) == 0


@pytest.mark.django_db(transaction=True)
def test_after_a_broker_failure_commits_leave_publishing_to_the_sweep(unreachable_broker):
    for n in range(3):
        with transaction.atomic():
            outbox_write(event_type="test.consumed", payload={"n": n})
        assert outbox_relay_flush()

    # Only the first commit tried the broker; the open breaker kept the others off it.
    assert sorted(OutboxEvent.objects.values_list("publish_attempts", flat=True)) == [0, 0, 1]
    assert OutboxEvent.objects.filter(sent_at__isnull=True).count() == 3
    assert outbox_breaker().is_open


@pytest.mark.django_db(transaction=True)
def test_a_successful_sweep_closes_the_breaker_for_commits_again(unreachable_broker):
    with transaction.atomic():
        outbox_write(event_type="test.consumed", payload={"n": 1})
    assert outbox_relay_flush()
    assert outbox_breaker().is_open

    current_app.conf.update(broker_write_url=current_app.conf.broker_url)
    outbox_relay_close()
    assert outbox_sweep(min_age_seconds=0) == 1
    with transaction.atomic():
        outbox_write(event_type="test.consumed", payload={"n": 2})
    assert outbox_relay_flush()

    assert OutboxEvent.objects.filter(sent_at__isnull=True).count() == 0


@pytest.mark.django_db(transaction=True)
def test_event_of_an_unregistered_type_or_with_other_fields_is_refused():
    refused = "No app registered the event type 'test.unknown'"
    with pytest.raises(ValueError, match=refused), transaction.atomic():
        outbox_write(event_type="test.unknown", payload={"n": 1})
    other_fields = r"has the fields \['n'\], not \['m', 'n'\]"
    with pytest.raises(ValueError, match=other_fields), transaction.atomic():
        outbox_write(event_type="test.happened", payload={"n": 1, "m": 2})

    assert not OutboxEvent.objects.exists()


@pytest.mark.django_db(transaction=True)
def test_publish_skips_an_event_already_sent():
    with transaction.atomic():
        event = outbox_write(event_type="test.happened", payload={"n": 0})
    assert outbox_relay_flush()

    assert outbox_publish(event_ids=[event.pk]) == 0
    event.refresh_from_db()
    assert event.publish_attempts == 1


@pytest.mark.django_db(transaction=True)
def test_registered_sweep_task_publishes_what_was_left_unsent(unreachable_broker):
    from datetime import timedelta

    from django.utils import timezone

    with transaction.atomic():
        outbox_write(event_type="test.consumed", payload={"n": 4})
    assert outbox_relay_flush()
    current_app.conf.update(broker_write_url=current_app.conf.broker_url)
    # Older than OUTBOX_SWEEP_MIN_AGE_SECONDS, as an event its commit hook left behind is.
    OutboxEvent.objects.update(created_at=timezone.now() - timedelta(minutes=1))

    # The task beat sends by name, found as a worker finds it, run as the worker runs it.
    current_app.loader.import_default_modules()
    assert current_app.tasks["core.outbox_sweep"].apply().get() == 1

    assert OutboxEvent.objects.get().sent_at is not None


# Last in the module: the worker it starts stays up until the module ends.
@pytest.mark.django_db(transaction=True)
def test_celery_beat_runs_the_outbox_sweep_on_its_schedule(event_worker, tmp_path):
    from datetime import timedelta

    from django.utils import timezone

    from tests.events_worker import running_beat, wait_for

    with transaction.atomic():
        # A type no task consumes: the sweep only has to publish it and mark it sent.
        event = OutboxEvent.objects.create(event_type="test.beat", payload={"n": 5})
    OutboxEvent.objects.filter(pk=event.pk).update(created_at=timezone.now() - timedelta(minutes=1))
    beat_env = {**event_worker.env, "OUTBOX_SWEEP_SECONDS": "1"}
    with running_beat(tmp_path / "beat", beat_env) as log_path:

        def sent() -> bool:
            event.refresh_from_db()
            return event.sent_at is not None

        wait_for(sent, 60, "beat's sweep to publish the event")

    assert "Sending due task outbox-sweep (core.outbox_sweep)" in log_path.read_text()
    assert event.publish_attempts == 1
