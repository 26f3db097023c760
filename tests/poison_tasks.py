"""Tasks only the test worker loads (``--include tests.poison_tasks``)."""

from __future__ import annotations

import os

from celery import shared_task

from apps.core.consumers import ReliableTask


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
