"""The transactional outbox: no phantom events, no lost ones."""

from __future__ import annotations

import pytest
from django.db import transaction

from apps.core.events import outbox
from apps.core.events.models import OutboxEvent
from apps.core.events.outbox import outbox_publish, outbox_relay_flush, outbox_sweep, outbox_write


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
    # The commit hands the event to this process's relay thread, which publishes it.
    assert outbox_relay_flush()

    event = OutboxEvent.objects.get()
    assert event.pk == written.pk
    assert event.payload == {"n": 2}
    assert event.sent_at is not None
    assert event.publish_attempts == 1
    assert outbox_sweep(min_age_seconds=0) == 0


@pytest.mark.django_db(transaction=True)
def test_commit_hands_the_event_to_the_relay_thread_instead_of_publishing_inline(
    no_consumers, monkeypatch
):
    import threading

    publishers: list[str] = []
    real_send = outbox._send

    def send(event: OutboxEvent) -> None:
        publishers.append(threading.current_thread().name)
        real_send(event)

    monkeypatch.setattr(outbox, "_send", send)
    with transaction.atomic():
        outbox_write(event_type="test.happened", payload={"n": 6})
    assert outbox_relay_flush()

    assert publishers == ["outbox-relay"]
    assert OutboxEvent.objects.get().sent_at is not None


@pytest.mark.django_db(transaction=True)
def test_relay_publishes_a_burst_of_commits_each_exactly_once(no_consumers, monkeypatch):
    sent: list[str] = []
    real_send = outbox._send

    def send(event: OutboxEvent) -> None:
        sent.append(str(event.pk))
        real_send(event)

    monkeypatch.setattr(outbox, "_send", send)
    written = []
    for n in range(60):
        with transaction.atomic():
            written.append(str(outbox_write(event_type="test.happened", payload={"n": n}).pk))
    assert outbox_relay_flush()

    assert sorted(sent) == sorted(written)
    assert OutboxEvent.objects.filter(sent_at__isnull=True).count() == 0
    assert set(OutboxEvent.objects.values_list("publish_attempts", flat=True)) == {1}
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
    assert outbox_relay_flush()
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
        assert outbox_relay_flush()

    assert len(calls) == 1
    assert OutboxEvent.objects.filter(sent_at__isnull=True).count() == 3


@pytest.mark.django_db(transaction=True)
def test_publish_skips_an_event_already_sent(no_consumers):
    with transaction.atomic():
        event = outbox_write(event_type="test.happened", payload={})
    assert outbox_relay_flush()

    assert outbox_publish(event_ids=[event.pk]) == 0
    event.refresh_from_db()
    assert event.publish_attempts == 1


def test_beat_schedule_runs_the_registered_sweep_task_every_outbox_sweep_seconds(settings):
    from celery import current_app

    entry = current_app.conf.beat_schedule["outbox-sweep"]

    assert entry == {"task": "core.outbox_sweep", "schedule": float(settings.OUTBOX_SWEEP_SECONDS)}


@pytest.mark.django_db(transaction=True)
def test_registered_sweep_task_publishes_what_was_left_unsent(no_consumers, monkeypatch):
    from datetime import timedelta

    from celery import current_app
    from django.utils import timezone

    monkeypatch.setattr(outbox, "_send", _broker_down)
    with transaction.atomic():
        outbox_write(event_type="test.happened", payload={"n": 4})
    assert outbox_relay_flush()
    monkeypatch.undo()
    monkeypatch.setattr(outbox, "_publish_paused_until", 0.0)
    # Older than OUTBOX_SWEEP_MIN_AGE_SECONDS, as an event its commit hook left behind is.
    OutboxEvent.objects.update(created_at=timezone.now() - timedelta(minutes=1))

    # The task beat sends by name, found as a worker finds it, run as the worker runs it.
    current_app.loader.import_default_modules()
    assert current_app.tasks["core.outbox_sweep"].apply().get() == 1

    assert OutboxEvent.objects.get().sent_at is not None


# Last in the module: the worker it starts stays up until the module ends.
@pytest.mark.django_db(transaction=True)
def test_celery_beat_runs_the_outbox_sweep_on_its_schedule(event_worker, tmp_path):
    import os
    import signal
    import subprocess
    from datetime import timedelta

    from django.utils import timezone

    from tests.events_worker import wait_for

    with transaction.atomic():
        # A type no task consumes: the sweep only has to publish it and mark it sent.
        event = OutboxEvent.objects.create(event_type="test.beat", payload={"n": 5})
    OutboxEvent.objects.filter(pk=event.pk).update(created_at=timezone.now() - timedelta(minutes=1))
    log_path = tmp_path / "beat.log"
    with log_path.open("wb") as log:
        beat = subprocess.Popen(
            [
                ".venv/bin/celery", "-A", "config", "beat", "--loglevel", "INFO",
                "--schedule", str(tmp_path / "celerybeat-schedule"),
                "--pidfile", str(tmp_path / "beat.pid"),
            ],
            env={**event_worker.env, "OUTBOX_SWEEP_SECONDS": "1"},
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )  # fmt: skip
        try:

            def sent() -> bool:
                if beat.poll() is not None:
                    pytest.fail(f"celery beat exited:\n{log_path.read_text()[-3000:]}")
                event.refresh_from_db()
                return event.sent_at is not None

            wait_for(sent, 60, "beat's sweep to publish the event")
        finally:
            os.killpg(beat.pid, signal.SIGTERM)
            beat.wait(20)

    assert "Sending due task outbox-sweep (core.outbox_sweep)" in log_path.read_text()
    assert event.publish_attempts == 1


def _broker_down(event: OutboxEvent) -> None:
    raise ConnectionRefusedError("broker down")
