"""Fixtures for the event tests: a real Celery worker and a real warehouse HTTP server.

The worker is a ``celery -A config worker`` subprocess on this run's queues (the
harness gives the run a unique ``EVENTS_QUEUE_PREFIX``) and on pytest-django's test
database, so tests using it must be ``transactional_db`` tests: only committed rows are
visible to it. It writes emails to files and logs to a file the tests can read.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import pytest

from deploy.local.processes import free_port, stop_group

WORKER_READY_TIMEOUT = 60


def wait_for(check: Callable[[], Any], timeout: float = 30, what: str = "condition") -> Any:
    """Poll ``check`` until it returns something truthy; return it, or fail after timeout."""
    deadline = time.monotonic() + timeout
    while True:
        result = check()
        if result:
            return result
        if time.monotonic() > deadline:
            pytest.fail(f"timed out after {timeout} s waiting for {what}")
        time.sleep(0.1)


@dataclass
class WarehouseServer:
    """A local HTTP server answering the statuses it is told to, recording each request."""

    url: str
    statuses: list[int] = field(default_factory=list)
    default_status: int = 200
    requests: list[tuple[float, dict[str, Any], dict[str, str]]] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def reset(self, *statuses: int, then: int = 200) -> None:
        """Answer ``statuses`` in turn, then ``then`` forever; forget earlier requests."""
        with self.lock:
            self.statuses = list(statuses)
            self.default_status = then
            self.requests = []

    def next_status(self, body: dict[str, Any], headers: dict[str, str]) -> int:
        with self.lock:
            self.requests.append((time.monotonic(), body, headers))
            return self.statuses.pop(0) if self.statuses else self.default_status

    def requests_for(self, order_id: int) -> list[tuple[float, dict[str, Any], dict[str, str]]]:
        """Return the requests whose body is about ``order_id``."""
        with self.lock:
            return [r for r in self.requests if r[1].get("order_id") == order_id]


def _handler(server: WarehouseServer) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            length = int(self.headers.get("Content-Length") or 0)
            body = json.loads(self.rfile.read(length) or b"{}")
            status = server.next_status(body, dict(self.headers.items()))
            self.send_response(status)
            self.send_header("Content-Length", "0")
            self.end_headers()

        def log_message(self, *args: Any) -> None:
            pass

    return Handler


@pytest.fixture(scope="session")
def warehouse() -> Iterator[WarehouseServer]:
    """Serve a warehouse webhook on a free local port for the whole session."""
    port = free_port()
    state = WarehouseServer(url=f"http://127.0.0.1:{port}/orders")
    httpd = ThreadingHTTPServer(("127.0.0.1", port), _handler(state))
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    yield state
    httpd.shutdown()
    httpd.server_close()


@dataclass
class Worker:
    """The running worker subprocess and where it leaves its output."""

    popen: subprocess.Popen[bytes]
    log_path: Path
    email_dir: Path
    database_url: str
    env: dict[str, str]

    def log(self) -> str:
        """Return everything the worker logged so far."""
        return self.log_path.read_text(errors="replace")

    def pool_pids(self) -> list[int]:
        """Return the pids of the worker's pool processes (children of its main process)."""
        pids = []
        for stat in Path("/proc").glob("[0-9]*/stat"):
            with contextlib.suppress(OSError):
                fields = stat.read_text().rsplit(")", 1)[1].split()
                if int(fields[1]) == self.popen.pid:
                    pids.append(int(stat.parent.name))
        return pids

    def kill_pool(self) -> list[int]:
        """SIGKILL every pool process; return their pids."""
        pids = self.pool_pids()
        for pid in pids:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
        return pids

    def settle(self, timeout: float = 30) -> None:
        """Drop queued messages and wait until the worker runs, holds or awaits no task.

        Called between tests: a task still running while pytest-django truncates the
        tables deadlocks the flush, and a late message would leak into the next test.
        """
        from config.celery import app

        _purge_run_queues()
        hostname = f"test{os.getpid()}@localhost"
        inspector = app.control.inspect(destination=[hostname], timeout=1)
        idle_rounds = 0
        deadline = time.monotonic() + timeout
        while idle_rounds < 2 and time.monotonic() < deadline:
            busy = [
                task
                for query in (inspector.active, inspector.reserved, inspector.scheduled)
                for tasks in (query() or {}).values()
                for task in tasks
            ]
            idle_rounds = 0 if busy else idle_rounds + 1
            if busy:
                time.sleep(0.2)

    def emails_mentioning(self, text: str) -> int:
        """Return how many emails the worker wrote that contain ``text``."""
        return sum(
            1 for path in self.email_dir.glob("*.log") if text in path.read_text(errors="replace")
        )


def test_database_url() -> str:
    """Return DATABASE_URL pointed at pytest-django's test database."""
    from django.db import connection

    parts = urlsplit(os.environ["DATABASE_URL"])
    return urlunsplit(parts._replace(path="/" + str(connection.settings_dict["NAME"])))


@pytest.fixture(scope="module")
def event_worker(
    django_db_setup: None,
    django_db_blocker: Any,
    warehouse: WarehouseServer,
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[Worker]:
    """Start a Celery worker (2 pool processes) for one test module; stop it after.

    Module scope, because a worker left running would consume the events of later
    transactional tests and race pytest-django's table flush between them. Messages
    those earlier tests left in this run's queues are purged first, for the same reason.
    """
    _purge_run_queues()
    with django_db_blocker.unblock():
        database_url = test_database_url()
    home = tmp_path_factory.mktemp("worker")
    with running_worker(home, worker_environment(database_url, warehouse)) as worker:
        yield worker


def worker_environment(database_url: str, warehouse: WarehouseServer) -> dict[str, str]:
    """Return the environment of a test worker on ``database_url`` (this process's, plus
    fast retries, the warehouse server, and the worker's reads on the primary)."""
    env = {
        **os.environ,
        "DATABASE_URL": database_url,
        "DJANGO_EMAIL_BACKEND": "django.core.mail.backends.filebased.EmailBackend",
        "WAREHOUSE_WEBHOOK_URL": warehouse.url,
        "EVENTS_MAX_RETRIES": "3",
        "EVENTS_RETRY_BACKOFF_SECONDS": "1",
        "LOG_LEVEL": "INFO",
        "PYTHONUNBUFFERED": "1",
    }
    env.pop("DATABASE_REPLICA_URLS", None)
    return env


@contextmanager
def running_worker(home: Path, env: dict[str, str]) -> Iterator[Worker]:
    """Run ``celery worker`` (2 pool processes, this run's hostname) with ``env``, its
    emails and log under ``home``; stop it (warm shutdown) when the block ends."""
    email_dir = home / "emails"
    email_dir.mkdir()
    env = {**env, "DJANGO_EMAIL_FILE_PATH": str(email_dir)}
    log_path = home / "worker.log"
    log = open(log_path, "wb")  # noqa: SIM115 -- kept open for the worker's life
    popen = subprocess.Popen(
        [
            ".venv/bin/celery", "-A", "config", "worker", "--pool", "prefork",
            "--concurrency", "2", "--loglevel", "INFO", "--include", "tests.poison_tasks",
            "--without-gossip", "--without-mingle", "--without-heartbeat",
            "--hostname", f"test{os.getpid()}@localhost",
        ],
        env=env,
        stdout=log,
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )  # fmt: skip
    worker = Worker(popen, log_path, email_dir, env["DATABASE_URL"], env)

    def ready() -> bool:
        if popen.poll() is not None:
            pytest.fail(f"the celery worker exited:\n{worker.log()[-3000:]}")
        return " ready." in worker.log()

    try:
        wait_for(ready, WORKER_READY_TIMEOUT, "the celery worker")
        yield worker
    finally:
        stop_group(popen, 20)
        log.close()


@contextmanager
def running_beat(home: Path, env: dict[str, str]) -> Iterator[Path]:
    """Run ``celery beat`` with ``env``, its schedule and log under ``home``; yield the log."""
    home.mkdir(parents=True, exist_ok=True)
    log_path = home / "beat.log"
    with log_path.open("wb") as log:
        popen = subprocess.Popen(
            [
                ".venv/bin/celery", "-A", "config", "beat", "--loglevel", "INFO",
                "--schedule", str(home / "celerybeat-schedule"),
                "--pidfile", str(home / "beat.pid"),
            ],
            env=env,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )  # fmt: skip
    try:
        yield log_path
        if popen.poll() is not None:
            pytest.fail(f"celery beat exited:\n{log_path.read_text()[-3000:]}")
    finally:
        stop_group(popen, 20)


@pytest.hookimpl(tryfirst=True)
def pytest_runtest_teardown(item: pytest.Item, nextitem: pytest.Item | None) -> None:
    """Settle the worker before the test's fixtures (and the table flush) are torn down."""
    worker = getattr(item, "funcargs", {}).get("event_worker")
    if isinstance(worker, Worker) and worker.popen.poll() is None:
        worker.settle()


def _run_queue_names() -> list[str]:
    prefix = os.environ.get("EVENTS_QUEUE_PREFIX", "")
    if not prefix.startswith("test") or not os.environ.get("CELERY_BROKER_URL"):
        return []
    return [f"{prefix}.{suffix}" for suffix in ("default", "orders", "webhooks", "dead")]


def _purge_run_queues() -> None:
    """Drop messages earlier tests of this run left in its queues."""
    from kombu import Connection

    names = _run_queue_names()
    if not names:
        return
    with Connection(os.environ["CELERY_BROKER_URL"]) as conn:
        for name in names:
            channel: Any = conn.channel()
            with contextlib.suppress(Exception):
                channel.queue_purge(name)
            with contextlib.suppress(Exception):
                channel.close()


def pytest_sessionfinish(session: pytest.Session) -> None:
    """Delete this run's queues and exchanges from the shared RabbitMQ."""
    prefix = os.environ.get("EVENTS_QUEUE_PREFIX", "")
    names = _run_queue_names()
    if not names:
        return
    from kombu import Connection

    with contextlib.suppress(Exception), Connection(os.environ["CELERY_BROKER_URL"]) as conn:
        channel: Any = conn.channel()
        for name in names:
            with contextlib.suppress(Exception):
                channel.queue_delete(name)
        for exchange in (prefix, f"{prefix}.dlx"):
            with contextlib.suppress(Exception):
                channel.exchange_delete(exchange)
