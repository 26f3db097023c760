"""``make stack-sharded`` end to end: an order through nginx lands on its owner's shard.

The same launcher as ``make stack`` (tests/deploy/test_stack.py's ``Stack``), with the
shard servers and a 3+3 Redis Cluster on free ports in a private ``STACK_VAR_DIR``;
Ctrl-C then leaves no process and no port behind.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator

import psycopg
import pytest
import requests

from deploy.local import postgres
from deploy.local.processes import free_port, port_open
from tests.config.subprocess_env import manage
from tests.deploy.test_stack import (
    STOPPED_BY_CTRL_C,
    Stack,
    _children,
    _commands_mentioning,
    _most_stocked_product,
    _place_order,
    _running,
    _signed_in,
    running_stack,
)


def _cluster_ports() -> list[int]:
    """Return 6 free ports whose bus ports (+10000) are valid and free too."""
    found: list[int] = []
    while len(found) < 6:
        port = free_port()
        if port + 10000 < 65536 and not port_open("127.0.0.1", port + 10000):
            found.append(port)
    return found


@pytest.fixture(scope="module")
def sharded_stack() -> Iterator[Stack]:
    """Start ``make stack-sharded`` on free ports in a private directory."""
    shard_ports = [free_port(), free_port()]
    cluster_ports = _cluster_ports()
    ports = {
        **{f"shard{number}": port for number, port in enumerate(shard_ports, 1)},
        **{f"redis-node-{port}": port for port in cluster_ports},
    }
    with running_stack(
        "stack-sharded",
        ports,
        STACK_SHARD_PORTS=",".join(map(str, shard_ports)),
        STACK_REDIS_CLUSTER_PORTS=",".join(map(str, cluster_ports)),
        STACK_WEB_CONCURRENCY="1",
        STACK_WORKER_CONCURRENCY="1",
        STACK_WEBHOOK_WORKER_CONCURRENCY="1",
    ) as started:
        yield started


def _place_signed_up_order(stack: Stack) -> tuple[int, int]:
    """Sign up, log in and place one order through nginx; return (owner id, order id)."""
    url = stack.url
    client = _signed_in(stack)
    me = client.get(f"{url}/api/v1/users/me", timeout=10)
    assert me.status_code == 200, me.text
    order_id = _place_order(stack, client, _most_stocked_product(stack, client))
    listed = client.get(f"{url}/api/v1/orders", timeout=10)
    assert listed.status_code == 200, listed.text
    assert order_id in [order["id"] for order in listed.json()["results"]]
    return int(me.json()["id"]), order_id


def _admin_order_list(stack: Stack) -> requests.Response:
    """Log in to the admin as the demo admin through nginx; return the order list's page."""
    admin = requests.Session()
    login_url = f"{stack.url}/admin/login/?next=/admin/orders/order/"
    form = admin.get(login_url, timeout=10)
    token = re.search(r'name="csrfmiddlewaretoken" value="([^"]+)"', form.text)
    assert token is not None, form.text[:2000]
    credentials = {"username": "admin", "password": "admin", "next": "/admin/orders/order/"}
    return admin.post(login_url, data={**credentials, "csrfmiddlewaretoken": token[1]}, timeout=30)


def _holds(port: int, order_id: int) -> bool:
    with psycopg.connect(postgres.url(port), autocommit=True) as conn:
        found = conn.execute("SELECT 1 FROM orders_order WHERE id = %s", [order_id])
        return found.fetchone() is not None


def test_an_order_through_nginx_lands_on_its_owners_shard_and_ctrl_c_leaves_nothing(
    sharded_stack: Stack,
) -> None:
    stack = sharded_stack
    owner_id, order_id = _place_signed_up_order(stack)
    env = {
        **stack.env,
        "DATABASE_URL": postgres.url(stack.ports["STACK_POSTGRES_PORT"]),
        "DATABASE_SHARD_URLS": ",".join(postgres.url(stack.ports[f"shard{i}"]) for i in (1, 2)),
        "DJANGO_SECRET_KEY": "test-only",
    }
    report = manage(env, "shards", "--json")
    assert report.returncode == 0, report.stderr[-4000:]
    document = json.loads(report.stdout.strip().splitlines()[-1])
    modulus = sum(p["table"] == "orders_order" for p in document["partitions"])
    with psycopg.connect(postgres.url(stack.ports["STACK_POSTGRES_PORT"])) as conn:
        remainder = conn.execute(
            "SELECT r FROM generate_series(0, %s - 1) r "
            "WHERE satisfies_hash_partition('orders_order'::regclass, %s, r, %s::bigint)",
            [modulus, modulus, owner_id],
        ).fetchone()
    assert remainder is not None
    server = next(
        p["server"]
        for p in document["partitions"]
        if p["table"] == "orders_order" and p["remainder"] == remainder[0]
    )
    number = int(server.rsplit("_", 1)[1])
    other = 3 - number

    assert _holds(stack.ports[f"shard{number}"], order_id)
    assert not _holds(stack.ports[f"shard{other}"], order_id)
    assert document["rows"][server]["orders_order"] >= 1
    assert not any(document["misplaced"].values())
    # The admin's order list spans the shards: the newest order is on its first page, and
    # the demo orders beyond the page are one "Older" link away.
    orders_page = _admin_order_list(stack)
    assert orders_page.status_code == 200, orders_page.text[:2000]
    assert f"/admin/orders/order/{order_id}/change/" in orders_page.text
    assert 'class="keyset-older"' in orders_page.text

    stack_ports = [*stack.ports.values(), *stack.web_ports]
    before = _children(stack.popen.pid) if stack.popen else set()
    status = stack.interrupt()

    assert len(before) >= 20
    assert status in STOPPED_BY_CTRL_C
    assert [pid for pid in stack.seen_pids if _running(pid)] == []
    assert [port for port in stack_ports if port_open("127.0.0.1", port)] == []
    assert _commands_mentioning(str(stack.var)) == []
