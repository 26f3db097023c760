"""/readyz against private servers this test stops and starts again."""

from __future__ import annotations

import contextlib
import http.client
import json
import os
import signal
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.servers import Process, Servers, find_binary, free_port, port_open, wait_until

ROOT = Path(__file__).resolve().parents[2]


def _readyz(port: int) -> tuple[int, dict[str, Any]]:
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
    try:
        connection.request("GET", "/readyz")
        response = connection.getresponse()
        return response.status, json.loads(response.read())
    finally:
        connection.close()


def _start_again(servers: Servers, name: str, database_url: str) -> None:
    """Start the stopped server ``name`` again on its old port and data."""
    process = next(p for p in servers.processes if p.name == name)
    servers.processes.remove(process)
    if name == "redis":
        popen = subprocess.Popen(
            process.popen.args, stdout=subprocess.DEVNULL, start_new_session=True
        )
        servers.processes.append(Process(name, popen))
        return
    home = servers.root / name
    port = int(database_url.rsplit(":", 1)[1].split("/", 1)[0])
    bindir = Path(find_binary("initdb")).resolve().parent
    as_user = "postgres" if os.geteuid() == 0 else None
    servers._run_postgres(bindir, home / "data", home, port, name, as_user)


@pytest.fixture
def web(tmp_path: Path) -> Iterator[tuple[int, Servers, str]]:
    """Serve the project on private PostgreSQL and Redis; yield port, servers, db URL."""
    servers = Servers()
    web_process = None
    try:
        database_url = servers.start_postgres().rsplit("/", 1)[0] + "/postgres"
        # Only the private servers: no replica of the suite's own database.
        env = {
            **{k: v for k, v in os.environ.items() if k != "DATABASE_REPLICA_URLS"},
            "DATABASE_URL": database_url,
            "REDIS_URL": servers.start_redis(),
            "PROMETHEUS_MULTIPROC_DIR": str(tmp_path / "metrics"),
            "ACCESS_LOG_LEVEL": "WARNING",
            "DATABASE_CONN_MAX_AGE": "0",
        }
        port = free_port()
        command = [
            sys.executable, "-m", "gunicorn", "--config", str(ROOT / "deploy" / "gunicorn.conf.py"),
            "--workers", "1", "--bind", f"127.0.0.1:{port}", "config.wsgi:application",
        ]  # fmt: skip
        web_process = subprocess.Popen(
            command,
            cwd=ROOT,
            env=env,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            start_new_session=True,
        )
        wait_until(lambda: port_open("127.0.0.1", port), 60, "gunicorn")
        yield port, servers, database_url
    finally:
        if web_process is not None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(web_process.pid, signal.SIGTERM)
            web_process.wait(30)
        servers.stop()


@pytest.mark.parametrize(("server", "check"), [("redis", "cache"), ("pg", "database")])
def test_readyz_names_a_stopped_dependency_and_recovers_when_it_returns(web, server, check):
    port, servers, database_url = web
    wait_until(lambda: _readyz(port)[0] == 200, 30, f"/readyz ({_readyz(port)[1]})")
    next(p for p in servers.processes if p.name == server).stop()

    status, body = _readyz(port)

    assert status == 503, body
    assert body["detail"] == f"Not ready: {check}."
    assert body["checks"][check]["ok"] is False
    assert [name for name, c in body["checks"].items() if not c["ok"]] == [check]

    _start_again(servers, server, database_url)

    wait_until(lambda: _readyz(port)[0] == 200, 60, f"/readyz after {server} returned")
    assert _readyz(port)[1]["checks"][check] == {"ok": True, "detail": "ok"}
