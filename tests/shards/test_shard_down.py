"""One shard down: the others keep serving, its own requests fail fast, and it all converges."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.gunicorn import Gunicorn, serving
from tests.shards.conftest import ShardedCluster

ORDERS = "/api/v1/orders"


@pytest.fixture(scope="module")
def web(
    sharded_cluster: ShardedCluster, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Gunicorn]:
    """Serve the project on the sharded coordinator; tasks run in-process."""
    env = {
        key: sharded_cluster.env[key]
        for key in sharded_cluster.env
        if key.startswith("DATABASE_SHARD") or key == "DATABASE_URL"
    }
    env |= {"REDIS_URL": "", "CELERY_BROKER_URL": "", "RATELIMIT_OVERRIDES": "api=10000/60"}
    with serving(Path(tmp_path_factory.mktemp("sharded-web")), env) as server:
        yield server


def _signup(web: Gunicorn, name: str) -> tuple[int, dict[str, str]]:
    body = {"username": name, "email": f"{name}@example.com", "password": "s3cret-Passw0rd!"}
    status, _, raw = web.request("POST", "/api/v1/users", body=body)
    assert status == 201, raw
    user_id = json.loads(raw)["id"]
    status, _, raw = web.request("POST", "/api/v1/auth/token", body=body)
    assert status == 200, raw
    return user_id, {"Authorization": f"Token {json.loads(raw)['token']}"}


def _users_on_each_shard(
    cluster: ShardedCluster, web: Gunicorn, prefix: str
) -> dict[int, tuple[int, dict[str, str]]]:
    found: dict[int, tuple[int, dict[str, str]]] = {}
    for n in range(40):
        user_id, auth = _signup(web, f"{prefix}{n}")
        found.setdefault(cluster.shard_of_owner(user_id), (user_id, auth))
        if len(found) == 2:
            return found
    raise AssertionError("40 users all hashed to one shard")


def _order(web: Gunicorn, auth: dict[str, str], product_id: int, key: str) -> tuple[int, Any]:
    status, _, raw = web.request(
        "POST",
        ORDERS,
        {**auth, "Idempotency-Key": key},
        {"items": [{"product_id": product_id, "quantity": 1}]},
    )
    return status, json.loads(raw)


def _product(cluster: ShardedCluster, sku: str) -> int:
    rows = cluster.on_coordinator(
        "INSERT INTO orders_product (sku, name, price, stock, created_at, updated_at) "
        "VALUES (%s, 'Sharded', 4.50, 100, now(), now()) RETURNING id",
        [sku],
    )
    return int(rows[0][0])


def test_with_a_shard_down_its_owners_get_503_and_others_keep_ordering_and_reading(
    sharded_cluster: ShardedCluster, web: Gunicorn
) -> None:
    users = _users_on_each_shard(sharded_cluster, web, "down")
    product = _product(sharded_cluster, "sharded-down")
    (_, up_auth), (down_user, down_auth) = users[1], users[2]
    assert _order(web, up_auth, product, "before")[0] == 201
    assert _order(web, down_auth, product, "before")[0] == 201

    sharded_cluster.servers.stop_server("shard2")
    try:
        status, placed = _order(web, up_auth, product, "during")
        assert status == 201, placed
        status, _, raw = web.request("GET", ORDERS, up_auth)
        assert status == 200
        assert [o["id"] for o in json.loads(raw)["results"]][0] == placed["id"]

        status, headers, raw = web.request("GET", ORDERS, down_auth)
        assert status == 503
        assert headers["Content-Type"] == "application/json"
        assert json.loads(raw) == {
            "detail": "A database server did not answer in time; retry shortly."
        }
        assert headers["Retry-After"] == "5"
        status, refused = _order(web, down_auth, product, "during")
        assert status == 503, refused
    finally:
        sharded_cluster.servers.restart_postgres("shard2")

    # Nothing of the refused order was kept anywhere: not its row, not its key.
    assert sharded_cluster.on_shard(
        2,
        "SELECT count(*) FROM orders_order WHERE owner_id = %s AND idempotency_key = 'during'",
        [down_user],
    ) == [(0,)]
    assert sharded_cluster.on_shard(
        2,
        "SELECT count(*) FROM core_idempotencyrecord WHERE owner_id = %s AND key = 'during'",
        [down_user],
    ) == [(0,)]
    # The client's retry with the same key is placed, and its order is confirmed.
    status, placed = _order(web, down_auth, product, "during")
    assert status == 201, placed
    deadline = time.monotonic() + 30
    while True:
        status, _, raw = web.request("GET", f"{ORDERS}/{placed['id']}", down_auth)
        if status == 200 and json.loads(raw)["status"] == "confirmed":
            break
        assert time.monotonic() < deadline, raw
        time.sleep(0.2)
    assert sharded_cluster.on_coordinator(
        "SELECT stock FROM orders_product WHERE id = %s", [product]
    ) == [(96,)]


_UNSENT_EVENT = (
    "INSERT INTO core_outboxevent (id, event_type, correlation_id, traceparent, payload,"
    " created_at, publish_attempts, shard_key)"
    " VALUES (gen_random_uuid(), 'test.swept', '', '', '{}', now() - interval '1 hour', 0, %s)"
    " RETURNING id"
)
_SWEEP = (
    "import json; from apps.core.events.outbox import outbox_sweep; "
    "print(json.dumps(outbox_sweep(min_age_seconds=0)))"
)


def test_the_outbox_sweep_publishes_the_events_of_the_shards_that_answer(
    sharded_cluster: ShardedCluster, web: Gunicorn
) -> None:
    # A relay that failed leaves its event to the sweep; one per shard here.
    users = _users_on_each_shard(sharded_cluster, web, "sweep")
    (up_owner, _), (down_owner, _) = users[1], users[2]
    up_event = sharded_cluster.on_coordinator(_UNSENT_EVENT, [up_owner])[0][0]
    down_event = sharded_cluster.on_coordinator(_UNSENT_EVENT, [down_owner])[0][0]

    def sent(shard: int, event: object) -> bool:
        rows = sharded_cluster.on_shard(
            shard, "SELECT sent_at IS NOT NULL FROM core_outboxevent WHERE id = %s", [event]
        )
        return bool(rows[0][0])

    sharded_cluster.servers.stop_server("shard2")
    try:
        # The sweep does not fail on the shard that is down: it publishes the other's.
        assert sharded_cluster.shell(_SWEEP) >= 1
        assert sent(1, up_event)
    finally:
        sharded_cluster.servers.restart_postgres("shard2")
    assert not sent(2, down_event)
    assert sharded_cluster.shell(_SWEEP) >= 1
    assert sent(2, down_event)


def test_a_reservation_whose_shard_dies_mid_way_leaves_nothing_and_converges_on_retry(
    sharded_cluster: ShardedCluster, web: Gunicorn
) -> None:
    users = _users_on_each_shard(sharded_cluster, web, "dying")
    owner = users[2][0]
    product = _product(sharded_cluster, "sharded-dying")
    observed = sharded_cluster.shell(
        "from tests.shards.inside import reserve_through_a_dying_shard; "
        f"reserve_through_a_dying_shard({owner}, {product}, {sharded_cluster.shards[1]!r})"
    )
    assert observed == {
        "stock_before": 100,
        "failure_is_remote": True,
        # The stock the coordinator took in the failed transaction went back with it.
        "after_failure": {"stock": 100, "status": "pending", "marks": 0, "confirmed_events": 0},
        "after_retry": {"stock": 97, "status": "confirmed", "marks": 1, "confirmed_events": 1},
    }
