"""/readyz against private servers this test stops and starts again."""

from __future__ import annotations

import contextlib
import http.client
import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from django.test import override_settings

from deploy.local.processes import Process, free_port, port_open, wait_until
from deploy.local.servers import Servers

ROOT = Path(__file__).resolve().parents[2]


def _readyz(port: int) -> tuple[int, dict[str, Any]]:
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
    try:
        connection.request("GET", "/readyz")
        response = connection.getresponse()
        return response.status, json.loads(response.read())
    finally:
        connection.close()


def _start_again(servers: Servers, name: str) -> None:
    """Start the stopped server ``name`` again on its old port and data."""
    process = next(p for p in servers.processes if p.name == name)
    servers.processes.remove(process)
    if name == "redis":
        popen = subprocess.Popen(
            process.popen.args, stdout=subprocess.DEVNULL, start_new_session=True
        )
        servers.processes.append(Process(name, popen))
        return
    servers.restart_postgres(name)


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
    port, servers, _ = web
    wait_until(lambda: _readyz(port)[0] == 200, 30, f"/readyz ({_readyz(port)[1]})")
    next(p for p in servers.processes if p.name == server).stop()

    status, body = _readyz(port)

    assert status == 503, body
    assert body["detail"] == f"Not ready: {check}."
    assert body["checks"][check]["ok"] is False
    assert [name for name, c in body["checks"].items() if not c["ok"]] == [check]

    _start_again(servers, server)

    wait_until(lambda: _readyz(port)[0] == 200, 60, f"/readyz after {server} returned")
    assert _readyz(port)[1]["checks"][check] == {"ok": True, "detail": "ok"}


def _redis_caches(url: str) -> dict[str, Any]:
    # No socket timeouts: only the check's own deadline can stop a hung call.
    return {
        "default": {
            "BACKEND": "django_redis.cache.RedisCache",
            "LOCATION": url,
            "KEY_PREFIX": "readyz-paused-test",
            "OPTIONS": {"CLIENT_CLASS": "django_redis.client.DefaultClient"},
        }
    }


@pytest.mark.django_db
def test_readyz_names_the_broker_while_a_private_rabbitmq_is_stopped_and_recovers(
    client, settings, private_servers
):
    url = private_servers.start_rabbitmq()
    port = int(url.rsplit(":", 1)[1].split("/", 1)[0])
    settings.CELERY_BROKER_URL = url
    wait_until(lambda: client.get("/readyz").status_code == 200, 60, "/readyz with rabbitmq")

    private_servers.stop_server("rabbitmq")
    response = client.get("/readyz")

    assert response.status_code == 503
    body = response.json()
    assert body["detail"] == "Not ready: broker."
    assert body["checks"]["broker"]["ok"] is False
    assert body["checks"]["database"] == {"ok": True, "detail": "ok"}
    assert body["checks"]["cache"] == {"ok": True, "detail": "ok"}

    private_servers.start_rabbitmq(port=port)

    wait_until(lambda: client.get("/readyz").status_code == 200, 60, "/readyz after rabbitmq")
    assert client.get("/readyz").json()["checks"]["broker"] == {"ok": True, "detail": "ok"}


@pytest.mark.django_db
def test_readyz_answers_503_within_two_seconds_when_redis_hangs(client, private_servers):
    url = private_servers.start_redis()
    redis = next(p for p in private_servers.processes if p.name == "redis")
    with override_settings(CACHES=_redis_caches(url), READYZ_CHECK_TIMEOUT_SECONDS=1.0):
        assert client.get("/readyz").status_code == 200
        os.kill(redis.popen.pid, signal.SIGSTOP)
        try:
            started = time.monotonic()
            response = client.get("/readyz")
            elapsed = time.monotonic() - started
            # The first probe is still blocked on the paused server: no second thread.
            again = client.get("/readyz").json()["checks"]["cache"]
        finally:
            os.kill(redis.popen.pid, signal.SIGCONT)

        assert response.status_code == 503
        body = response.json()
        assert body["detail"] == "Not ready: cache."
        assert body["checks"]["cache"] == {"ok": False, "detail": "timed out after 1 s"}
        assert body["checks"]["database"] == {"ok": True, "detail": "ok"}
        assert elapsed < 2.0, elapsed
        assert again == {"ok": False, "detail": "previous probe still running"}
        # Once Redis runs again the stuck probe returns and the next one passes.
        wait_until(lambda: client.get("/readyz").status_code == 200, 30, "/readyz after SIGCONT")
