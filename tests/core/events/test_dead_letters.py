"""Dead letters: poison messages through a real worker and RabbitMQ; replay and discard."""

from __future__ import annotations

import io
import os
import uuid

import pytest
from celery import current_app
from django.conf import settings
from django.core.management import call_command
from kombu import Connection, Producer

from apps.core.events.correlation import CORRELATION_HEADER
from apps.core.events.dead_letters import (
    dead_letter_discard,
    dead_letter_replay,
    dead_letters_drain,
)
from apps.core.events.models import DeadLetter
from apps.core.http.errors import InvalidInput
from tests.events_worker import wait_for


def _drained(**filters):
    dead_letters_drain()
    return DeadLetter.objects.filter(**filters).first()


@pytest.mark.django_db(transaction=True)
def test_task_that_kills_its_process_is_dead_lettered_after_the_delivery_limit(
    event_worker, tmp_path
):
    crashes, notes = tmp_path / "crashes", tmp_path / "notes"
    current_app.send_task("tests.crash_process", kwargs={"marker_path": str(crashes)})
    for n in range(5):
        current_app.send_task("tests.note", kwargs={"marker_path": str(notes), "text": f"n{n}"})

    letter = wait_for(lambda: _drained(task="tests.crash_process"), 90, "the dead letter")

    assert crashes.read_text().count("attempt") == settings.EVENTS_MAX_DELIVERIES
    assert letter.payload == {"args": [], "kwargs": {"marker_path": str(crashes)}}
    assert letter.reason.startswith("rejected by the broker: delivery_limit")
    assert letter.status == DeadLetter.Status.PENDING
    # The other messages kept flowing meanwhile.
    wait_for(lambda: notes.exists() and notes.read_text().count("\n") == 5, 30, "other tasks")
    assert sorted(notes.read_text().split()) == ["n0", "n1", "n2", "n3", "n4"]


@pytest.mark.django_db(transaction=True)
def test_undecodable_message_is_dead_lettered_not_dropped(event_worker):
    message_id = str(uuid.uuid4())
    with Connection(settings.CELERY_BROKER_URL) as conn:
        Producer(conn.default_channel).publish(
            b"{not json",
            exchange=settings.EVENTS_QUEUE_PREFIX,
            routing_key=f"{settings.EVENTS_QUEUE_PREFIX}.orders",
            content_type="application/json",
            content_encoding="utf-8",
            headers={"task": "orders.reserve_inventory", "id": message_id},
        )

    letter = wait_for(lambda: _drained(message_id=message_id), 30, "the dead letter")

    assert letter.task == ""
    assert letter.payload == {"raw": "{not json"}
    assert letter.reason == "rejected by the broker: rejected"
    assert "undecodable message" in event_worker.log()
    with pytest.raises(InvalidInput):
        dead_letter_replay(dead_letter_id=letter.pk)


@pytest.mark.django_db(transaction=True)
def test_task_killed_by_its_hard_time_limit_is_dead_lettered_once_with_its_context(
    event_worker, tmp_path
):
    hangs, notes = tmp_path / "hangs", tmp_path / "notes"
    current_app.send_task(
        "tests.hang",
        kwargs={"marker_path": str(hangs)},
        headers={CORRELATION_HEADER: "corr-hang-12345"},
    )

    letter = wait_for(
        lambda: DeadLetter.objects.filter(task="tests.hang").first(), 60, "the dead letter"
    )

    assert letter.reason.startswith("TimeLimitExceeded")
    assert letter.attempts == 1
    assert letter.correlation_id == "corr-hang-12345"
    assert letter.payload == {"args": [], "kwargs": {"marker_path": str(hangs)}}
    assert letter.status == DeadLetter.Status.PENDING
    # The worker goes on consuming, and the hung message was acked, not redelivered.
    current_app.send_task("tests.note", kwargs={"marker_path": str(notes), "text": "after"})
    wait_for(lambda: notes.exists() and "after" in notes.read_text(), 30, "the next task")
    assert hangs.read_text().count("attempt") == 1
    assert DeadLetter.objects.filter(task="tests.hang").count() == 1


def _letter(**overrides):
    values = {
        "task": "tests.note",
        "message_id": str(uuid.uuid4()),
        "payload": {"args": [], "kwargs": {"marker_path": "/nonexistent/x", "text": "t"}},
        "reason": "RetryableError: boom",
        "attempts": 4,
        "correlation_id": "corr-dl-1234",
    }
    return DeadLetter.objects.create(**{**values, **overrides})


@pytest.mark.django_db
def test_discard_marks_a_pending_letter_and_refuses_a_second_time():
    letter = _letter()

    dead_letter_discard(dead_letter_id=letter.pk)

    letter.refresh_from_db()
    assert letter.status == DeadLetter.Status.DISCARDED
    assert letter.resolved_at is not None
    with pytest.raises(InvalidInput):
        dead_letter_discard(dead_letter_id=letter.pk)
    with pytest.raises(InvalidInput):
        dead_letter_replay(dead_letter_id=letter.pk)


@pytest.mark.django_db
def test_replay_dead_letters_command_lists_without_changing_anything():
    letter = _letter()
    out = io.StringIO()

    call_command("replay_dead_letters", "--list", stdout=out)

    assert out.getvalue() == f"{letter.pk}\ttests.note\t4\tRetryableError: boom\n"
    letter.refresh_from_db()
    assert letter.status == DeadLetter.Status.PENDING


@pytest.mark.django_db
def test_admin_discard_action_discards_the_selected_letters(admin_client):
    kept, dropped = _letter(), _letter()

    response = admin_client.post(
        "/admin/core/deadletter/",
        {"action": "discard", "_selected_action": [dropped.pk]},
    )

    assert response.status_code == 302
    kept.refresh_from_db()
    dropped.refresh_from_db()
    assert kept.status == DeadLetter.Status.PENDING
    assert dropped.status == DeadLetter.Status.DISCARDED


@pytest.mark.django_db(transaction=True)
def test_a_task_whose_database_session_ends_under_it_is_retried_not_dead_lettered(
    event_worker, tmp_path
):
    marker = tmp_path / "attempts"
    current_app.send_task("tests.lose_db_connection_once", kwargs={"marker_path": str(marker)})

    wait_for(lambda: marker.exists() and "done" in marker.read_text(), 60, "the retried task")

    assert marker.read_text() == "attempt\nattempt\ndone\n"
    assert not _drained(task="tests.lose_db_connection_once")


@pytest.mark.django_db(transaction=True)
def test_a_replay_the_broker_does_not_take_leaves_the_letter_pending_and_says_so():
    # During a broker outage or failover the admin's replay action raised (a 500 page).
    from django.db import connection

    from deploy.local.processes import free_port
    from tests.config.subprocess_env import DROPPED, manage

    letter = _letter()
    db = connection.settings_dict
    env = {key: value for key, value in os.environ.items() if key not in DROPPED}
    env["DATABASE_URL"] = f"postgres://{db['USER']}@{db['HOST']}:{db['PORT']}/{db['NAME']}"
    # Nothing listens there: every publish is refused.
    env["CELERY_BROKER_URL"] = f"amqp://guest:guest@127.0.0.1:{free_port()}//"

    result = manage(env, "replay_dead_letters", "--id", str(letter.pk), "--no-drain")

    assert result.returncode == 1, result.stderr
    assert f"dead letter {letter.pk}: Dead letter {letter.pk} stays pending" in result.stderr
    assert "Traceback" not in result.stderr
    letter.refresh_from_db()
    assert letter.status == DeadLetter.Status.PENDING
    assert letter.resolved_at is None
