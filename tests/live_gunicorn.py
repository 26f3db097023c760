"""A real gunicorn with four sync workers on the test database, for cross-process tests."""

from __future__ import annotations

import http.client
import os
import subprocess
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from django.conf import settings
from django.db import connection

from deploy.local.processes import free_port, stop_group, wait_until

BASE_DIR = Path(__file__).resolve().parents[1]


class Gunicorn:
    def __init__(self, port: int, popen: subprocess.Popen[bytes], log: Path) -> None:
        self.port, self.popen, self.log = port, popen, log

    def request(
        self,
        method: str,
        path: str,
        headers: dict[str, str] | None = None,
        body: str | None = None,
    ) -> tuple[int, dict[str, str], bytes]:
        """Send one request on a fresh connection; return status, headers and body."""
        conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=30)
        try:
            conn.request(method, path, body=body, headers=headers or {})
            response = conn.getresponse()
            content = response.read()
            return response.status, dict(response.getheaders()), content
        finally:
            conn.close()

    def get(self, path: str, headers: dict[str, str] | None = None) -> tuple[int, dict[str, str]]:
        """Send one GET; return its status and headers."""
        status, fields, _ = self.request("GET", path, headers)
        return status, fields


def database_url_of_the_test_db() -> str:
    db = connection.settings_dict
    password = f":{db['PASSWORD']}" if db["PASSWORD"] else ""
    return f"postgres://{db['USER']}{password}@{db['HOST']}:{db['PORT']}/{db['NAME']}"


@contextmanager
def running_gunicorn(tmp_path: Path, **env_overrides: str) -> Iterator[Gunicorn]:
    """Serve the project with four sync workers on the test database and Redis."""
    port = free_port()
    env = {
        **os.environ,
        "DATABASE_URL": database_url_of_the_test_db(),
        "REDIS_URL": settings.REDIS_URL,
        "RATELIMIT_REDIS_URL": settings.RATELIMIT_REDIS_URL,
        "RATELIMIT_KEY_PREFIX": settings.RATELIMIT_KEY_PREFIX,
        "LOG_LEVEL": "WARNING",
        "ACCESS_LOG_LEVEL": "WARNING",
        **env_overrides,
    }
    # The replica the harness may start serves the primary's own database, not the test
    # one; the workers must read the rows this test commits.
    env.pop("DATABASE_REPLICA_URLS", None)
    env.pop("PROMETHEUS_MULTIPROC_DIR", None)
    log = tmp_path / "gunicorn.log"
    command = [
        sys.executable, "-m", "gunicorn", "config.wsgi:application",
        "-w", "4", "-b", f"127.0.0.1:{port}", "--backlog", "2048",
        "--log-level", "warning",
    ]  # fmt: skip
    with log.open("wb") as out:
        popen = subprocess.Popen(
            command, cwd=BASE_DIR, env=env, stdout=out, stderr=subprocess.STDOUT,
            start_new_session=True,
        )  # fmt: skip
    server = Gunicorn(port, popen, log)

    def ready() -> bool:
        assert popen.poll() is None, log.read_text()
        try:
            return server.get("/healthz")[0] == 200
        except OSError:
            return False

    try:
        wait_until(ready, 60, "gunicorn")
        yield server
    finally:
        stop_group(popen, 15)
