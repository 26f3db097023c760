"""The transactional outbox: no phantom events, no lost ones."""

from __future__ import annotations

import pytest
from django.db import transaction

from apps.core import outbox
from apps.core.models import OutboxEvent
from apps.core.outbox import outbox_publish, outbox_sweep, outbox_write


@pytest.fixture(autouse=True)
def _broker_not_paused(monkeypatch):
    # The pause after a failed publish is per process; no test inherits another's.
    monkeypatch.setattr(outbox, "_publish_paused_until", 0.0)


@pytest.fixture
def no_consumers(settings):
    # Events of this type reach no task, so publishing them touches nothing else.
    settings.OUTBOX_ROUTES = {"test.happened": []}


@pytest.mark.django_db(transaction=True)
def test_rolled_back_transaction_leaves_no_event(no_consumers):
    def place_and_fail() -> None:
        with transaction.atomic():
            outbox_write(event_type="test.happened", payload={"n": 1})
            raise RuntimeError("boom")

    with pytest.raises(RuntimeError, match="boom"):
        place_and_fail()

    assert not OutboxEvent.objects.exists()


@pytest.mark.django_db(transaction=True)
def test_committed_transaction_leaves_exactly_one_sent_event(no_consumers):
    with transaction.atomic():
        written = outbox_write(event_type="test.happened", payload={"n": 2})

    event = OutboxEvent.objects.get()
    assert event.pk == written.pk
    assert event.payload == {"n": 2}
    assert event.sent_at is not None
    assert event.publish_attempts == 1
    assert outbox_sweep(min_age_seconds=0) == 0


@pytest.mark.django_db(transaction=True)
def test_outbox_write_outside_a_transaction_is_refused(no_consumers):
    with pytest.raises(RuntimeError, match="inside the transaction"):
        outbox_write(event_type="test.happened", payload={})

    assert not OutboxEvent.objects.exists()


@pytest.mark.django_db(transaction=True)
def test_event_left_unsent_by_a_broker_failure_is_published_by_the_sweep(no_consumers, monkeypatch):
    def broker_down(event):
        # Stands for the publish failing; the real unreachable broker is in test_events_worker.
        raise ConnectionRefusedError("broker down")

    monkeypatch.setattr(outbox, "_send", broker_down)
    with transaction.atomic():
        outbox_write(event_type="test.happened", payload={"n": 3})
    event = OutboxEvent.objects.get()
    assert event.sent_at is None
    assert event.publish_attempts == 1

    monkeypatch.undo()
    monkeypatch.setattr(outbox, "_publish_paused_until", 0.0)
    assert outbox_sweep(min_age_seconds=0) == 1

    event.refresh_from_db()
    assert event.sent_at is not None
    assert event.publish_attempts == 2
    assert outbox_sweep(min_age_seconds=0) == 0


@pytest.mark.django_db(transaction=True)
def test_after_a_broker_failure_requests_leave_publishing_to_the_sweep(no_consumers, monkeypatch):
    calls = []

    def broker_down(event):
        calls.append(event.pk)
        raise ConnectionRefusedError("broker down")

    monkeypatch.setattr(outbox, "_send", broker_down)
    for n in range(3):
        with transaction.atomic():
            outbox_write(event_type="test.happened", payload={"n": n})

    assert len(calls) == 1
    assert OutboxEvent.objects.filter(sent_at__isnull=True).count() == 3


@pytest.mark.django_db(transaction=True)
def test_publish_skips_an_event_already_sent(no_consumers):
    with transaction.atomic():
        event = outbox_write(event_type="test.happened", payload={})

    assert outbox_publish(event_ids=[event.pk]) == 0
    event.refresh_from_db()
    assert event.publish_attempts == 1
