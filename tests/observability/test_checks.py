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
import uuid
from collections.abc import Iterator
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
from django.test import override_settings

from apps.core.events.models import OutboxEvent
from apps.orders.models import Order, Product
from apps.users.models import User
from deploy.local.processes import Process, free_port, port_open, wait_until
from deploy.local.servers import Servers
from tests.factories import PASSWORD
from tests.observability.conftest import database_url, samples

ROOT = Path(__file__).resolve().parents[2]


def _readyz(port: int, path: str = "/readyz") -> tuple[int, dict[str, Any]]:
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
    try:
        connection.request("GET", path)
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


@contextlib.contextmanager
def _gunicorn(env: dict[str, str]) -> Iterator[int]:
    """Serve the project with one gunicorn worker on ``env``; yield its port."""
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
    try:
        wait_until(lambda: port_open("127.0.0.1", port), 60, "gunicorn")
        yield port
    finally:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(web_process.pid, signal.SIGTERM)
        web_process.wait(30)


@pytest.fixture
def web(tmp_path: Path) -> Iterator[tuple[int, Servers, str]]:
    """Serve the project on private PostgreSQL and Redis; yield port, servers, db URL."""
    servers = Servers()
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
        with _gunicorn(env) as port:
            yield port, servers, database_url
    finally:
        servers.stop()


def test_readyz_answers_503_while_the_primary_database_is_stopped_and_recovers(web):
    port, servers, _ = web
    wait_until(lambda: _readyz(port)[0] == 200, 30, f"/readyz ({_readyz(port)[1]})")
    next(p for p in servers.processes if p.name == "pg").stop()

    status, body = _readyz(port)

    assert status == 503, body
    assert body["status"] == "unavailable"
    assert body["detail"] == "Not ready: database."
    assert body["checks"]["database"]["state"] == "down"
    assert body["checks"]["database"]["role"] is None
    assert [name for name, c in body["checks"].items() if not c["ok"]] == ["database"]

    _start_again(servers, "pg")

    wait_until(lambda: _readyz(port)[0] == 200, 60, "/readyz after PostgreSQL returned")
    assert _readyz(port)[1]["checks"]["database"]["role"] == "leader"


def test_readyz_stays_200_while_redis_is_stopped_and_strict_answers_503(web):
    port, servers, _ = web
    wait_until(lambda: _readyz(port)[0] == 200, 30, f"/readyz ({_readyz(port)[1]})")
    next(p for p in servers.processes if p.name == "redis").stop()

    status, body = _readyz(port)
    strict, strict_body = _readyz(port, "/readyz?strict=1")

    assert status == 200, body
    assert body["status"] == "degraded"
    assert body["detail"] == "Serving without: cache."
    assert body["checks"]["cache"]["state"] == "down"
    assert body["checks"]["database"]["state"] == "ok"
    assert strict == 503, strict_body
    assert strict_body["detail"] == "Not ready: cache."

    _start_again(servers, "redis")

    wait_until(lambda: _readyz(port)[1]["status"] == "ok", 60, "/readyz after Redis returned")
    assert _readyz(port)[1]["checks"]["cache"]["role"] == "master"


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


@pytest.fixture
def broker_web(
    django_db_setup: None, django_db_blocker: Any, tmp_path: Path
) -> Iterator[tuple[int, Servers, str]]:
    """Serve the suite's database and Redis with a private RabbitMQ; yield port, servers, URL."""
    servers = Servers()
    try:
        broker_url = servers.start_rabbitmq()
        env = {
            **{k: v for k, v in os.environ.items() if k != "DATABASE_REPLICA_URLS"},
            "DATABASE_URL": database_url("default"),
            "CELERY_BROKER_URL": broker_url,
            "PROMETHEUS_MULTIPROC_DIR": str(tmp_path / "metrics"),
            "ACCESS_LOG_LEVEL": "WARNING",
        }
        env.pop("OTEL_EXPORTER_OTLP_ENDPOINT", None)
        with _gunicorn(env) as port:
            yield port, servers, broker_url
    finally:
        servers.stop()


def _request(port: int, method: str, path: str, body: Any, **headers: str) -> Any:
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
    try:
        headers = {"Content-Type": "application/json", **headers}
        connection.request(method, path, body=json.dumps(body), headers=headers)
        response = connection.getresponse()
        return response.status, json.loads(response.read())
    finally:
        connection.close()


def _metric(port: int, name: str, **labels: str) -> float | None:
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
    try:
        connection.request("GET", "/metrics")
        text = connection.getresponse().read().decode()
    finally:
        connection.close()
    wanted = tuple(sorted(labels.items()))
    return samples(text, name).get(wanted)


def test_with_the_broker_stopped_readyz_stays_200_and_orders_are_still_taken(
    broker_web, django_db_blocker
):
    port, servers, broker_url = broker_web
    node = broker_url.split("@", 1)[1].split("/", 1)[0]
    wait_until(lambda: _readyz(port)[1]["status"] == "ok", 60, f"/readyz ({_readyz(port)[1]})")
    up = _readyz(port)[1]["checks"]["broker"]
    name = f"nobroker{uuid.uuid4().hex[:8]}"
    with django_db_blocker.unblock():
        product = Product.objects.create(sku=name, name=name, price=Decimal("2.50"), stock=5)
    signup = {"username": name, "email": f"{name}@example.com", "password": PASSWORD}
    order_id = None
    try:
        assert _request(port, "POST", "/api/v1/users", signup)[0] == 201
        login = {"username": name, "password": PASSWORD}
        token = _request(port, "POST", "/api/v1/auth/token", login)[1]["token"]

        servers.stop_server("rabbitmq")
        status, body = _readyz(port)
        strict = _readyz(port, "/readyz?strict=1")[0]
        placed, order = _request(
            port, "POST", "/api/v1/orders",
            {"items": [{"product_id": product.pk, "quantity": 1}]},
            Authorization=f"Token {token}", **{"Idempotency-Key": name},
        )  # fmt: skip
        order_id = order.get("id")
        down_gauge = _metric(port, "readiness_state", check="broker", state="down")
        role_gauge = _metric(port, "readiness_role", check="broker", target=node, role="node")
        with django_db_blocker.unblock():
            unsent = OutboxEvent.objects.filter(
                payload__order_id=order_id, sent_at__isnull=True
            ).count()

        assert up["state"] == "ok"
        assert up["role"] == "node"
        assert up["node"] == node
        assert status == 200, body
        assert body["status"] == "degraded"
        assert body["checks"]["broker"]["state"] == "down"
        assert body["checks"]["database"]["state"] == "ok"
        assert strict == 503
        assert placed == 201, order
        assert order["status"] == "pending"
        # The event waits in the outbox for the broker; nothing was lost.
        assert unsent == 1
        assert down_gauge == 1
        assert role_gauge == 0

        servers.start_rabbitmq(port=int(node.rsplit(":", 1)[1]))

        wait_until(lambda: _readyz(port)[1]["status"] == "ok", 60, "/readyz after RabbitMQ")
        assert _readyz(port)[1]["checks"]["broker"]["node"] == node
    finally:
        with django_db_blocker.unblock():
            if order_id is not None:
                OutboxEvent.objects.filter(payload__order_id=order_id).delete()
            Order.objects.filter(owner__username=name).delete()
            User.objects.filter(username=name).delete()
            Product.objects.filter(pk=product.pk).delete()


@pytest.mark.django_db
def test_a_hung_redis_is_reported_down_within_the_deadline_and_strict_answers_503(
    client, private_servers
):
    url = private_servers.start_redis()
    redis = next(p for p in private_servers.processes if p.name == "redis")
    with override_settings(CACHES=_redis_caches(url), READYZ_CHECK_TIMEOUT_SECONDS=1.0):
        assert client.get("/readyz").json()["status"] == "ok"
        os.kill(redis.popen.pid, signal.SIGSTOP)
        try:
            started = time.monotonic()
            response = client.get("/readyz?strict=1")
            elapsed = time.monotonic() - started
            # The first probe is still blocked on the paused server: no second thread.
            again = client.get("/readyz")
        finally:
            os.kill(redis.popen.pid, signal.SIGCONT)

        assert response.status_code == 503
        body = response.json()
        assert body["detail"] == "Not ready: cache."
        assert body["checks"]["cache"]["state"] == "down"
        assert body["checks"]["cache"]["detail"] == "timed out after 1 s"
        assert body["checks"]["database"]["state"] == "ok"
        assert elapsed < 2.0, elapsed
        assert again.status_code == 200
        assert again.json()["checks"]["cache"]["detail"] == "previous probe still running"
        # Once Redis runs again the stuck probe returns and the next one passes.
        wait_until(
            lambda: client.get("/readyz").json()["status"] == "ok", 30, "/readyz after SIGCONT"
        )
