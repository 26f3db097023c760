"""A real gunicorn server (deploy/gunicorn.conf.py) for the metrics tests."""

from __future__ import annotations

import contextlib
import http.client
import os
import subprocess
import sys
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import pytest
from django.conf import settings
from prometheus_client.parser import text_string_to_metric_families

from deploy.local.processes import free_port, stop_group, wait_until

ROOT = Path(__file__).resolve().parents[2]
HOST = "127.0.0.1"


@dataclass
class Gunicorn:
    """A running gunicorn master, its port and its metrics directory."""

    popen: subprocess.Popen[bytes]
    port: int
    metrics_dir: Path
    log_path: Path

    def get(self, path: str) -> tuple[int, bytes]:
        """Send one GET on a fresh connection (no keep-alive); return status and body."""
        connection = http.client.HTTPConnection(HOST, self.port, timeout=30)
        try:
            connection.request("GET", path, headers={"Connection": "close"})
            response = connection.getresponse()
            return response.status, response.read()
        finally:
            connection.close()

    def post(self, path: str, body: str) -> tuple[int, bytes]:
        """Send one JSON POST on a fresh connection; return status and body."""
        connection = http.client.HTTPConnection(HOST, self.port, timeout=30)
        try:
            headers = {"Connection": "close", "Content-Type": "application/json"}
            connection.request("POST", path, body=body, headers=headers)
            response = connection.getresponse()
            return response.status, response.read()
        finally:
            connection.close()

    def get_many(self, paths: list[str], threads: int = 16) -> list[int]:
        """GET every path from a thread pool; return the statuses in order."""
        with ThreadPoolExecutor(threads) as pool:
            return [status for status, _ in pool.map(self.get, paths)]

    def scrape(self) -> str:
        """Return the text of ``/metrics``."""
        status, body = self.get("/metrics")
        assert status == 200, body
        return body.decode()

    def worker_pids(self) -> set[int]:
        """Return the pids of the master's live worker processes."""
        children = set()
        for stat in Path("/proc").glob("[0-9]*/stat"):
            with contextlib.suppress(OSError):
                fields = stat.read_text().rsplit(")", 1)[1].split()
                if int(fields[1]) == self.popen.pid and fields[0] != "Z":
                    children.add(int(stat.parent.name))
        return children

    def log_tail(self) -> str:
        return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-40:])


def samples(text: str, name: str) -> dict[tuple[tuple[str, str], ...], float]:
    """Return every sample called ``name`` in an exposition, keyed by sorted labels."""
    found = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            if sample.name == name:
                found[tuple(sorted(sample.labels.items()))] = sample.value
    return found


def database_url(alias: str) -> str:
    """Return a URL for the test database pytest-django created, as ``alias`` reaches it."""
    db = settings.DATABASES[alias]
    return f"postgres://{db['USER']}@{db['HOST']}:{db['PORT']}/{db['NAME']}"


def replica_urls() -> str:
    """Return the replicas' URLs of the test database (it reaches them by replication)."""
    aliases = [alias for alias in settings.DATABASES if alias.startswith("replica_")]
    return ",".join(database_url(alias) for alias in aliases)


@pytest.fixture(scope="package")
def gunicorn(
    django_db_setup: None, django_db_blocker: object, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Gunicorn]:
    """Serve the project with 4 workers recycled every ~200 requests, as in production."""
    home = tmp_path_factory.mktemp("gunicorn")
    metrics_dir = home / "metrics"
    port = free_port()
    env = {
        **os.environ,
        "DATABASE_URL": database_url("default"),
        "DATABASE_REPLICA_URLS": replica_urls(),
        "PROMETHEUS_MULTIPROC_DIR": str(metrics_dir),
        # 10,000 access-log lines would only slow the run down.
        "ACCESS_LOG_LEVEL": "WARNING",
        "GUNICORN_LOG_LEVEL": "warning",
    }
    env.pop("OTEL_EXPORTER_OTLP_ENDPOINT", None)
    command = [
        sys.executable, "-m", "gunicorn",
        "--config", str(ROOT / "deploy" / "gunicorn.conf.py"),
        "--workers", "4",
        "--max-requests", "200",
        "--max-requests-jitter", "20",
        "--bind", f"{HOST}:{port}",
        "config.wsgi:application",
    ]  # fmt: skip
    log_path = home / "gunicorn.log"
    with log_path.open("wb") as log:
        popen = subprocess.Popen(
            command, cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True
        )
    server = Gunicorn(popen, port, metrics_dir, log_path)

    def answers() -> bool:
        assert popen.poll() is None, server.log_tail()
        with contextlib.suppress(OSError):
            return server.get("/metrics")[0] == 200
        return False

    try:
        try:
            wait_until(answers, 60, "gunicorn")
        except Exception as exc:
            raise AssertionError(f"{exc}:\n{server.log_tail()}") from None
        yield server
    finally:
        stop_group(popen, 30)
