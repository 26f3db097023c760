"""SIGTERM to a Celery worker (a deploy, a scale-down) finishes its running task first.

Its own module: the test stops the module's worker, which no later test could then use.
"""

from __future__ import annotations

import os
import signal
from pathlib import Path

from celery import current_app

from tests.events_worker import Worker, wait_for


def test_sigterm_lets_the_running_task_finish_before_the_worker_exits(
    event_worker: Worker, tmp_path: Path
) -> None:
    marker = tmp_path / "marker"
    current_app.signature(
        "tests.slow_note", kwargs={"marker_path": str(marker), "seconds": 3}
    ).delay()
    wait_for(lambda: marker.exists() and "start" in marker.read_text(), 30, "the task to start")

    os.kill(event_worker.popen.pid, signal.SIGTERM)  # warm shutdown: the main process only
    exit_code = event_worker.popen.wait(30)

    assert exit_code == 0, event_worker.log()[-3000:]
    assert marker.read_text() == "start\ndone\n"
    assert "Warm shutdown" in event_worker.log()
