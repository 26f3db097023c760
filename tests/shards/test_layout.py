"""Where sharded rows land, the ids they get, and the owner that never changes."""

from __future__ import annotations

import json
import threading
from collections import Counter

import psycopg
import pytest

from tests.shards.conftest import ShardedCluster

pytestmark = pytest.mark.usefixtures("sharded_cluster")


def test_migrate_again_changes_nothing_and_places_partitions_round_robin(
    sharded_cluster: ShardedCluster,
) -> None:
    sharded_cluster.manage_ok("migrate", "--no-input", "-v", "0")
    report = json.loads(sharded_cluster.manage_ok("shards", "--json"))
    orders = {
        p["remainder"]: p["server"] for p in report["partitions"] if p["table"] == "orders_order"
    }
    assert orders == {r: f"shard_{r % 2 + 1}" for r in range(16)}
    tables = {p["table"] for p in report["partitions"]}
    assert tables == {
        "orders_order",
        "orders_orderline",
        "core_outboxevent",
        "core_idempotencyrecord",
    }
    # Each shard holds only its own eight remainders.
    for number in (1, 2):
        leaves = sharded_cluster.on_shard(
            number,
            "SELECT c.relname FROM pg_inherits i JOIN pg_class c ON c.oid = i.inhrelid "
            "WHERE i.inhparent = 'orders_order'::regclass ORDER BY 1",
        )
        expected = sorted(f"orders_order_p{r}" for r in range(16) if r % 2 + 1 == number)
        assert [name for (name,) in leaves] == expected


def test_thousand_orders_land_only_on_their_owners_shard(sharded_cluster: ShardedCluster) -> None:
    before = {n: _owner_counts(sharded_cluster, n) for n in (1, 2)}
    seeded = sharded_cluster.shell(
        "from tests.shards.inside import seed_unpublished; seed_unpublished(300, 20, 1000)"
    )
    assert seeded == {"orders": 1000}
    added: Counter[int] = Counter()
    for number in (1, 2):
        now = _owner_counts(sharded_cluster, number)
        homes = sharded_cluster.shards_of_owners(list(now))
        for owner, count in now.items():
            added[owner] += count - before[number].get(owner, 0)
            # Every owner found on a shard is one PostgreSQL's hash puts there.
            assert homes[owner] == number, owner
    assert sum(added.values()) == 1000
    assert len([owner for owner, count in added.items() if count]) > 100
    for number in (1, 2):
        # Every line and every outbox event of an order sits beside it on its shard.
        orphans = sharded_cluster.on_shard(
            number,
            "SELECT (SELECT count(*) FROM orders_orderline l WHERE NOT EXISTS "
            "(SELECT 1 FROM orders_order o WHERE o.id = l.order_id AND o.owner_id = l.owner_id)),"
            " (SELECT count(*) FROM core_outboxevent e WHERE NOT EXISTS (SELECT 1 FROM "
            "orders_order o WHERE o.id = (e.payload->>'order_id')::bigint "
            "AND o.owner_id = e.shard_key))",
        )
        assert orphans == [(0, 0)]
    report = json.loads(sharded_cluster.manage_ok("shards", "--json"))
    assert set(report["misplaced"].values()) == {0}
    total = sharded_cluster.on_coordinator("SELECT count(*) FROM orders_order")[0][0]
    assert total == sum(report["rows"][s]["orders_order"] for s in ("shard_1", "shard_2"))


def test_ids_stay_unique_across_ten_thousand_concurrent_inserts(
    sharded_cluster: ShardedCluster,
) -> None:
    ids: list[int] = []
    errors: list[BaseException] = []
    lock = threading.Lock()

    def insert(worker: int) -> None:
        try:
            with psycopg.connect(sharded_cluster.coordinator, autocommit=True) as conn:
                for batch in range(25):
                    rows = conn.execute(
                        "INSERT INTO orders_order (owner_id, status, status_reason, total, "
                        "idempotency_key, created_at, updated_at) SELECT 900000 + g %% 97, "
                        "'pending', '', 0, %s || g, now(), now() "
                        "FROM generate_series(1, 50) g RETURNING id",
                        [f"ids-{worker}-{batch}-"],
                    ).fetchall()
                    with lock:
                        ids.extend(row[0] for row in rows)
        except BaseException as exc:  # noqa: BLE001 -- reported by the test below
            errors.append(exc)

    threads = [threading.Thread(target=insert, args=(w,)) for w in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert errors == []
    assert len(ids) == 10_000
    assert len(set(ids)) == 10_000
    # And as the shards themselves hold them: no id on both.
    on_shards = [
        set(
            r[0]
            for r in sharded_cluster.on_shard(
                n, "SELECT id FROM orders_order WHERE idempotency_key LIKE 'ids-%%'"
            )
        )
        for n in (1, 2)
    ]
    assert not on_shards[0] & on_shards[1]
    assert on_shards[0] | on_shards[1] == set(ids)
    sharded_cluster.on_coordinator("DELETE FROM orders_order WHERE owner_id >= 900000")


def test_owner_change_is_refused_and_the_row_stays_where_it_was(
    sharded_cluster: ShardedCluster,
) -> None:
    owner = 800_001
    other_shard_owner = next(
        o
        for o in range(800_002, 800_100)
        if sharded_cluster.shard_of_owner(o) != sharded_cluster.shard_of_owner(owner)
    )
    same_shard_owner = next(
        o
        for o in range(800_002, 800_100)
        if sharded_cluster.shard_of_owner(o) == sharded_cluster.shard_of_owner(owner)
    )
    (order_id,) = sharded_cluster.on_coordinator(
        "INSERT INTO orders_order (owner_id, status, status_reason, total, idempotency_key, "
        "created_at, updated_at) VALUES (%s, 'pending', '', 0, 'owner-change', now(), now()) "
        "RETURNING id",
        [owner],
    )[0]
    for new_owner in (other_shard_owner, same_shard_owner):
        with pytest.raises(psycopg.errors.CheckViolation, match="shard key"):
            sharded_cluster.on_coordinator(
                "UPDATE orders_order SET owner_id = %s WHERE id = %s", [new_owner, order_id]
            )
    home = sharded_cluster.shard_of_owner(owner)
    assert sharded_cluster.on_shard(
        home, "SELECT owner_id FROM orders_order WHERE id = %s", [order_id]
    ) == [(owner,)]
    assert sharded_cluster.on_coordinator(
        "SELECT owner_id FROM orders_order WHERE owner_id = %s", [owner]
    ) == [(owner,)]
    sharded_cluster.on_coordinator("DELETE FROM orders_order WHERE owner_id = %s", [owner])


def test_a_shard_refuses_a_row_of_another_shards_partition(sharded_cluster: ShardedCluster) -> None:
    owner = next(o for o in range(700_000, 700_100) if sharded_cluster.shard_of_owner(o) == 2)
    with pytest.raises(psycopg.errors.CheckViolation, match="no partition"):
        sharded_cluster.on_shard(
            1,
            "INSERT INTO orders_order (owner_id, status, status_reason, total, idempotency_key, "
            "created_at, updated_at) VALUES (%s, 'pending', '', 0, 'stray', now(), now())",
            [owner],
        )


def _owner_counts(cluster: ShardedCluster, number: int) -> dict[int, int]:
    rows = cluster.on_shard(
        number, "SELECT owner_id, count(*) FROM orders_order WHERE owner_id < 700000 GROUP BY 1"
    )
    return {int(owner): int(count) for owner, count in rows}
