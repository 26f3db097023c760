"""``make stack-ha``: the stack's app tier on Patroni, Redis Sentinel and 3 RabbitMQ nodes.

The layout test checks what the stack runs itself when the engines are external; the
end-to-end test starts ``make stack-ha`` on free ports in a private directory, places an
order through nginx that the worker confirms over the RabbitMQ cluster, presses Ctrl-C
and checks that no process of the run and none of its ports is left.
"""

from __future__ import annotations

import os
import re
import shutil
import tempfile
import uuid
from pathlib import Path

import pytest
import requests

from deploy.local.processes import free_port, port_open
from deploy.stack.layout import Layout
from deploy.stack.services import app_env, services
from tests.deploy.test_stack import (
    APP_VARIABLES,
    STOPPED_BY_CTRL_C,
    Stack,
    _commands_mentioning,
    _running,
    wait_for,
)

ENGINE_VARIABLES = ("REDIS_SENTINELS", "REDIS_SENTINEL_MASTER", "EVENTS_QUEUE_PREFIX")
BROKER = "amqp://guest:guest@127.0.0.1:5801//;amqp://guest:guest@127.0.0.1:5802//"


def test_on_external_engines_the_stack_runs_only_its_pooler_and_the_app(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setenv("REDIS_SENTINELS", "127.0.0.1:26001,127.0.0.1:26002")
    monkeypatch.setenv("REDIS_SENTINEL_MASTER", "hs")
    layout = Layout.from_env(
        {
            "STACK_VAR_DIR": str(tmp_path),
            "STACK_EXTERNAL_ENGINES": "1",
            "STACK_POSTGRES_PORT": "7001",
            "STACK_REPLICA_PORT": "7002",
            "STACK_BROKER_URL": BROKER,
        }
    )

    names = [service.name for service in services(layout)]
    env = app_env(layout, "secret")

    assert sorted(names) == [
        "beat",
        "nginx",
        "pgbouncer",
        "web1",
        "web2",
        "webhook-worker",
        "worker",
    ]
    pooler = next(s for s in services(layout) if s.name == "pgbouncer")
    assert pooler.waits_for[0][0] == "PostgreSQL on port 7001"
    assert env["DATABASE_URL"].endswith(f":{layout.pgbouncer_port}/highscale")
    assert env["DATABASE_REPLICA_URLS"].endswith(":7002/highscale")
    assert env["REDIS_SENTINELS"] == "127.0.0.1:26001,127.0.0.1:26002"
    assert env["REDIS_SENTINEL_MASTER"] == "hs"
    assert "REDIS_URL" not in env
    assert env["CELERY_BROKER_URL"] == BROKER


def test_make_stack_ha_serves_an_order_through_nginx_and_ctrl_c_leaves_nothing() -> None:
    base = Path(tempfile.mkdtemp(prefix="highscale-stack-ha-"))
    base.chmod(0o755)  # the engines run as postgres and rabbitmq inside it
    var = base / "var"
    ports = {
        name: free_port()
        for name in ("STACK_NGINX_PORT", "STACK_PGBOUNCER_PORT", "STACK_WORKER_METRICS_PORT")
    }
    web_ports = (free_port(), free_port())
    drop = (*APP_VARIABLES, *ENGINE_VARIABLES)
    env = {key: value for key, value in os.environ.items() if key not in drop}
    env.update(
        {name: str(port) for name, port in ports.items()},
        STACK_WEB_PORTS=",".join(map(str, web_ports)),
        STACK_VAR_DIR=str(var),
        STACK_WEB_CONCURRENCY="2",
        # The test polls the order; the default 100 per minute would refuse the polling.
        RATELIMIT_OVERRIDES="api=100000/60",
    )
    stack = Stack(var=var, env=env, ports=ports, web_ports=web_ports, target="stack-ha")
    stack.start_timeout = 300
    try:
        stack.start()
        token = requests.post(
            f"{stack.url}/api/v1/auth/token",
            json={"username": "admin", "password": "admin"},
            timeout=10,
        ).json()["token"]
        auth = {"Authorization": f"Token {token}"}
        # The demo orders took stock at random: the best-stocked product can be confirmed.
        products = requests.get(f"{stack.url}/api/v1/products", timeout=10).json()["results"]
        product = max(products, key=lambda p: p["stock"])

        created = requests.post(
            f"{stack.url}/api/v1/orders",
            json={"items": [{"product_id": product["id"], "quantity": 1}]},
            headers={**auth, "Idempotency-Key": str(uuid.uuid4())},
            timeout=10,
        )
        assert created.status_code == 201, created.text

        def decided() -> str | None:
            answer = requests.get(
                f"{stack.url}/api/v1/orders/{created.json()['id']}", headers=auth, timeout=10
            )
            assert answer.status_code == 200, answer.text
            status = answer.json()["status"]
            return None if status == "pending" else str(status)

        # The release's 500 demo orders go first (11 s here idle; CI once took over 90 s).
        try:
            assert wait_for(decided, 240, "the worker to decide the order") == "confirmed"
        except pytest.fail.Exception:
            pytest.fail(f"the order stayed pending; the stack's log:\n{stack.log()[-12000:]}")
        ready = requests.get(f"{stack.url}/readyz", params={"strict": 1}, timeout=10)
        assert ready.status_code == 200, ready.text
        engine_ports = [int(p) for p in re.findall(r"127\.0\.0\.1:(\d+)", stack.log())]
        engine_ports += [int(p) for p in re.findall(r"(?:primary|replica) (\d+)", stack.log())]

        code = stack.interrupt()

        assert code in STOPPED_BY_CTRL_C, stack.log()[-4000:]
        assert [pid for pid in stack.seen_pids if _running(pid)] == []
        assert _commands_mentioning(str(base)) == []
        open_ports = [
            port
            for port in [*ports.values(), *web_ports, *engine_ports]
            if port_open("127.0.0.1", port)
        ]
        assert open_ports == []
    finally:
        stack.kill_leftovers()
        if not os.environ.get("HIGHSCALE_KEEP_SERVER_DIRS"):
            shutil.rmtree(base, ignore_errors=True)
