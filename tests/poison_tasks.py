"""Tasks only the test worker loads (``--include tests.poison_tasks``)."""

from __future__ import annotations

import os
import time

from celery import shared_task
from celery.exceptions import SoftTimeLimitExceeded

from apps.core.events.consumers import ReliableTask


@shared_task(base=ReliableTask, name="tests.crash_process", ignore_result=True)
def crash_process(marker_path: str) -> None:
    """Note the attempt in ``marker_path``, then kill the process running it."""
    with open(marker_path, "a") as marker:
        marker.write("attempt\n")
    os._exit(1)


@shared_task(base=ReliableTask, name="tests.note", ignore_result=True)
def note(marker_path: str, text: str) -> None:
    """Append ``text`` to ``marker_path``: proof that a message was consumed."""
    with open(marker_path, "a") as marker:
        marker.write(text + "\n")


@shared_task(
    base=ReliableTask, name="tests.hang", ignore_result=True, soft_time_limit=1, time_limit=3
)
def hang(marker_path: str) -> None:
    """Note the attempt, then hang through the soft limit until the hard limit kills it."""
    with open(marker_path, "a") as marker:
        marker.write("attempt\n")
    deadline = time.monotonic() + 60
    while True:
        # Like code stuck in a C call: the soft limit's exception does not stop it,
        # wherever in the loop it lands (not only inside the sleep).
        try:
            while time.monotonic() < deadline:
                time.sleep(0.1)
            return
        except SoftTimeLimitExceeded:
            continue


@shared_task(base=ReliableTask, name="tests.slow_note", ignore_result=True)
def slow_note(marker_path: str, seconds: float) -> None:
    """Note the start, work for ``seconds``, then note the end."""
    with open(marker_path, "a") as marker:
        marker.write("start\n")
    time.sleep(seconds)
    with open(marker_path, "a") as marker:
        marker.write("done\n")


@shared_task(base=ReliableTask, name="tests.outbox_consumer", ignore_result=True)
def outbox_consumer(event_id: str, n: int) -> None:
    """Consume the outbox tests' ``test.consumed`` events: nothing to do."""


@shared_task(base=ReliableTask, name="tests.lose_db_connection_once", ignore_result=True)
def lose_db_connection_once(marker_path: str) -> None:
    """On the first attempt, have PostgreSQL end this task's session (as a failover does)."""
    from django.db import connection

    with open(marker_path, "a") as marker:
        marker.write("attempt\n")
    with open(marker_path) as marker:
        first = marker.read().count("attempt") == 1
    with connection.cursor() as cursor:
        if first:
            cursor.execute("SELECT pg_terminate_backend(pg_backend_pid())")
        cursor.execute("SELECT 1")
    with open(marker_path, "a") as marker:
        marker.write("done\n")
