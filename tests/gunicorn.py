"""Real gunicorn with four sync workers on the test database: the cross-process tests' server."""

from __future__ import annotations

import http.client
import json
import os
import subprocess
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from django.db import connection

from deploy.local.processes import free_port, stop_group, wait_until

BASE_DIR = Path(__file__).resolve().parents[1]


class Gunicorn:
    """A running gunicorn, and plain HTTP requests to it (one connection each)."""

    def __init__(self, port: int, popen: subprocess.Popen[bytes], log: Path) -> None:
        self.port, self.popen, self.log = port, popen, log

    def request(
        self,
        method: str,
        path: str,
        headers: dict[str, str] | None = None,
        body: Any = None,
    ) -> tuple[int, dict[str, str], bytes]:
        """Send one request on a new connection; return status, headers and body."""
        conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=30)
        fields = dict(headers or {})
        payload = None
        if body is not None:
            payload = json.dumps(body).encode()
            fields["Content-Type"] = "application/json"
        try:
            conn.request(method, path, body=payload, headers=fields)
            response = conn.getresponse()
            return response.status, dict(response.getheaders()), response.read()
        finally:
            conn.close()

    def get(self, path: str, headers: dict[str, str] | None = None) -> tuple[int, dict[str, str]]:
        """Send a GET; return its status and headers."""
        status, fields, _ = self.request("GET", path, headers)
        return status, fields


def display_names(server: Gunicorn, user_id: int, count: int = 20) -> list[str]:
    """Return the public name that each of ``count`` new connections is served for the user.

    Each request is a new connection, so the workers take turns answering them.
    """
    names = []
    for _ in range(count):
        status, _, body = server.request("GET", f"/api/v1/users/{user_id}")
        assert status == 200, body
        names.append(json.loads(body)["display_name"])
    return names


def database_url_of_the_test_db() -> str:
    """Return the URL of the database pytest-django made for this run."""
    db = connection.settings_dict
    password = f":{db['PASSWORD']}" if db["PASSWORD"] else ""
    return f"postgres://{db['USER']}{password}@{db['HOST']}:{db['PORT']}/{db['NAME']}"


@contextmanager
def serving(
    tmp_path: Path, env: dict[str, str], *, config: Path | None = None, workers: int = 4
) -> Iterator[Gunicorn]:
    """Serve the project with ``workers`` sync workers on the test database, ``env`` added.

    ``config`` is a gunicorn config file (e.g. deploy/gunicorn.conf.py) to serve with
    instead of gunicorn's defaults.
    """
    port = free_port()
    inherited = dict(os.environ)
    # The replica the harness may start serves the primary's own database, not the test
    # one; the workers must read the rows this test commits. A test that needs a replica
    # passes the test database's on it in ``env``.
    inherited.pop("DATABASE_REPLICA_URLS", None)
    inherited.pop("PROMETHEUS_MULTIPROC_DIR", None)
    environment = {
        **inherited,
        "DATABASE_URL": database_url_of_the_test_db(),
        "LOG_LEVEL": "WARNING",
        "ACCESS_LOG_LEVEL": "WARNING",
        **env,
    }
    log = tmp_path / "gunicorn.log"
    command = [
        sys.executable, "-m", "gunicorn", "config.wsgi:application",
        *(["--config", str(config)] if config is not None else []),
        "-w", str(workers), "-b", f"127.0.0.1:{port}", "--backlog", "2048",
        "--log-level", "warning",
    ]  # fmt: skip
    with log.open("wb") as out:
        popen = subprocess.Popen(
            command, cwd=BASE_DIR, env=environment, stdout=out, stderr=subprocess.STDOUT,
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
