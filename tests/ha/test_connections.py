"""The app on the Patroni cluster without a failover: which server each path reaches."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import psycopg

from deploy.local.patroni import PatroniCluster
from deploy.local.processes import wait_until
from tests.gunicorn import Gunicorn, serving
from tests.ha.conftest import MULTI_HOST, PROXY, app_environment
from tests.ha.writes import server_port, skus_on, write


def test_the_multi_host_url_and_haproxy_both_reach_the_leader(ha_db: PatroniCluster) -> None:
    leader = ha_db.leader()
    assert leader is not None
    leader_port = ha_db.nodes[leader].port

    multi, proxy = write(MULTI_HOST, "multi"), write(PROXY, "proxy")

    assert server_port(MULTI_HOST) == leader_port
    assert server_port(PROXY) == leader_port
    assert skus_on(ha_db.node_url(leader), multi) == {multi}
    assert skus_on(ha_db.node_url(leader), proxy) == {proxy}


@contextmanager
def replay_paused(cluster: PatroniCluster) -> Iterator[None]:
    """Pause WAL replay on the replica behind HAProxy's replica port; always resume it."""
    with psycopg.connect(cluster.replica_url, autocommit=True) as conn:
        conn.execute("SELECT pg_wal_replay_pause()")
        try:
            yield
        finally:
            conn.execute("SELECT pg_wal_replay_resume()")


def _product_on_the_leader(cluster: PatroniCluster) -> int:
    with psycopg.connect(cluster.primary_url, autocommit=True) as conn:
        row = conn.execute(
            "INSERT INTO orders_product (sku, name, price, stock, created_at, updated_at) "
            "VALUES (%s, 'routing', 1, 1, now(), now()) RETURNING id",
            [f"route-{uuid.uuid4().hex[:12]}"],
        ).fetchone()
    assert row is not None
    return int(row[0])


def _status(server: Gunicorn, path: str, headers: dict[str, str] | None = None) -> int:
    return server.get(path, headers)[0]


def test_the_router_reads_from_haproxys_replica_port_and_writes_to_its_primary_port(
    cluster: PatroniCluster, tmp_path: Path
) -> None:
    env = app_environment(cluster.primary_url)
    # Replay is paused on purpose below: the lag bound must not take the replica out.
    env["DATABASE_REPLICA_MAX_LAG_SECONDS"] = "3600"
    env["DATABASE_REPLICA_URLS"] = cluster.replica_url
    with (
        serving(tmp_path, env, workers=1) as server,
        replay_paused(cluster),
    ):
        product = f"/api/v1/products/{_product_on_the_leader(cluster)}"
        # Until the worker's replica monitor has probed once, reads use the primary
        # (which has the product); from then on they go to the replica, which has not
        # replayed it.
        wait_until(lambda: _status(server, product) == 404, 60, "a read from the replica")
        assert [_status(server, product) for _ in range(3)] == [404, 404, 404]

        username = f"ha{uuid.uuid4().hex[:10]}"
        email, password = f"{username}@example.com", "Ha-pass-2468!"
        body = {"username": username, "email": email, "password": password}
        status, headers, _ = server.request("POST", "/api/v1/users", body=body)
        assert status == 201
        token = headers["X-Read-After"]

        # The write's token sends the read to the primary: the replica has not
        # replayed past it.
        assert _status(server, product, {"X-Read-After": token}) == 200

    wait_until(lambda: _users_named(cluster.replica_url, username) == 1, 30, "replay")
    assert _users_named(cluster.primary_url, username) == 1


def _users_named(url: str, username: str) -> int:
    with psycopg.connect(url, autocommit=True) as conn:
        row = conn.execute(
            "SELECT count(*) FROM users_user WHERE username = %s", [username]
        ).fetchone()
    return int(row[0]) if row else 0


def test_members_report_one_leader_and_one_synchronous_standby(cluster: PatroniCluster) -> None:
    members = {m.name: (m.role, m.state) for m in cluster.members()}
    leader = cluster.leader()
    standby = next(name for name in cluster.nodes if name != leader)

    assert members == {leader: ("leader", "running"), standby: ("sync_standby", "running")}
    assert cluster.haproxy.up("primary") == [leader]
    assert cluster.haproxy.up("replica") == [standby]
