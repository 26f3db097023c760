"""A real Celery worker's tasks show up on its own metrics endpoint, by name and state."""

from __future__ import annotations

import contextlib
import os
import subprocess
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from celery import current_app

from deploy.local.processes import free_port, stop_group
from tests.events_worker import _purge_run_queues, _run_queue_names, wait_for
from tests.events_worker import test_database_url as worker_database_url
from tests.observability.conftest import samples


class MetricsWorker:
    """A ``celery worker`` subprocess serving its metrics on ``port``."""

    def __init__(self, popen: subprocess.Popen[bytes], port: int, log_path: Path) -> None:
        self.popen = popen
        self.port = port
        self.log_path = log_path

    def scrape(self) -> str:
        """Return the text of the worker's ``/metrics``."""
        url = f"http://127.0.0.1:{self.port}/metrics"
        with urllib.request.urlopen(url, timeout=10) as response:  # noqa: S310 -- local http URL
            text: str = response.read().decode()
        return text

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")


@pytest.fixture(scope="module")
def metrics_worker(
    django_db_setup: None, django_db_blocker: Any, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[MetricsWorker]:
    """Start a prefork worker (2 processes) with CELERY_METRICS_PORT on this run's queues."""
    _purge_run_queues()
    home = tmp_path_factory.mktemp("metrics-worker")
    port = free_port()
    with django_db_blocker.unblock():
        database_url = worker_database_url()
    env = {
        **os.environ,
        "DATABASE_URL": database_url,
        "CELERY_METRICS_PORT": str(port),
        "CELERY_METRICS_ADDR": "127.0.0.1",
        "PROMETHEUS_MULTIPROC_DIR": str(home / "metrics"),
        "PYTHONUNBUFFERED": "1",
    }
    env.pop("DATABASE_REPLICA_URLS", None)
    env.pop("OTEL_EXPORTER_OTLP_ENDPOINT", None)
    log_path = home / "worker.log"
    with log_path.open("wb") as log:
        popen = subprocess.Popen(
            [
                ".venv/bin/celery", "-A", "config", "worker", "--pool", "prefork",
                "--concurrency", "2", "--loglevel", "INFO", "--include", "tests.poison_tasks",
                "--without-gossip", "--without-mingle", "--without-heartbeat",
                "--hostname", f"metrics{os.getpid()}@localhost",
            ],
            env=env,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )  # fmt: skip
    worker = MetricsWorker(popen, port, log_path)

    def ready() -> bool:
        if popen.poll() is not None:
            pytest.fail(f"the celery worker exited:\n{worker.log()[-3000:]}")
        if " ready." not in worker.log():
            return False
        with contextlib.suppress(OSError):
            worker.scrape()
            return True
        return False

    try:
        wait_for(ready, 90, "the celery worker's metrics endpoint")
        yield worker
    finally:
        stop_group(popen, 20)


def _task_count(text: str, task: str, state: str) -> float:
    return samples(text, "celery_tasks_total").get((("state", state), ("task", task)), 0.0)


@pytest.mark.django_db(transaction=True)
def test_tasks_run_by_a_real_worker_are_counted_by_name_and_state_with_runtime(
    metrics_worker, tmp_path
):
    from apps.core.events.models import DeadLetter

    marker = tmp_path / "note.txt"
    missing_dir = tmp_path / "missing" / "note.txt"
    current_app.signature("tests.note", kwargs={"marker_path": str(marker), "text": "a"}).delay()
    current_app.signature("tests.note", kwargs={"marker_path": str(marker), "text": "b"}).delay()
    # Writing into a directory that does not exist raises: a failure, dead-lettered.
    current_app.signature(
        "tests.note", kwargs={"marker_path": str(missing_dir), "text": "c"}
    ).delay()

    def settled() -> str | None:
        text = metrics_worker.scrape()
        done = _task_count(text, "tests.note", "succeeded") + _task_count(
            text, "tests.note", "failed"
        )
        return text if done >= 3 else None

    text = wait_for(
        settled, 60, f"3 finished tasks in the worker's metrics:\n{metrics_worker.log()[-2000:]}"
    )

    assert sorted(marker.read_text().split()) == ["a", "b"]
    assert _task_count(text, "tests.note", "started") == 3.0
    assert _task_count(text, "tests.note", "succeeded") == 2.0
    assert _task_count(text, "tests.note", "failed") == 1.0
    assert _task_count(text, "tests.note", "retried") == 0.0
    runtime = samples(text, "celery_task_runtime_seconds_count")
    assert runtime[(("task", "tests.note"),)] == 3.0
    assert samples(text, "celery_task_runtime_seconds_sum")[(("task", "tests.note"),)] > 0.0
    # "sent" is counted where a task is published (here: this test process), not here.
    assert _task_count(text, "tests.note", "sent") == 0.0
    assert DeadLetter.objects.filter(task="tests.note").count() == 1


@pytest.mark.django_db(transaction=True)
def test_worker_metrics_include_queue_depth_per_queue_and_dead_letters_by_status(metrics_worker):
    from apps.core.events.models import DeadLetter

    DeadLetter.objects.create(task="tests.note", message_id="m-1", reason="test")

    text = metrics_worker.scrape()

    depths = samples(text, "celery_queue_length")
    assert {dict(labels)["queue"] for labels in depths} == set(_run_queue_names())
    # The worker consumes the work queues, and nothing is left in them.
    for name in _run_queue_names():
        if not name.endswith(".dead"):
            assert depths[(("queue", name),)] == 0.0
    assert samples(text, "dead_letters") == {
        (("status", "pending"),): 1.0,
        (("status", "replayed"),): 0.0,
        (("status", "discarded"),): 0.0,
    }
