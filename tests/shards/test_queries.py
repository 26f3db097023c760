"""The plans of the sharded reads: one shard for an owner's orders, all at once for the admin."""

from __future__ import annotations

import pytest

from tests.shards.conftest import ShardedCluster

OWNER_BASE = 600_000


@pytest.fixture(scope="module")
def many_orders(sharded_cluster: ShardedCluster) -> None:
    """Insert 160 orders of 40 owners through the coordinator."""
    sharded_cluster.on_coordinator(
        "INSERT INTO orders_order (owner_id, status, status_reason, total, idempotency_key, "
        "created_at, updated_at) SELECT %s + g %% 40, 'pending', '', 0, 'q-' || g, now(), now() "
        "FROM generate_series(1, 160) g",
        [OWNER_BASE],
    )


def test_own_orders_and_their_lines_each_read_one_partition_of_one_shard(
    sharded_cluster: ShardedCluster,
) -> None:
    plans = sharded_cluster.shell(
        f"from tests.shards.inside import explain_own_orders; explain_own_orders({OWNER_BASE + 7})"
    )
    for query in ("orders", "lines"):
        scans = [line for line in plans[query] if "Foreign Scan" in line]
        assert len(scans) == 1, plans[query]
        assert not any("Append" in line for line in plans[query]), plans[query]


@pytest.mark.usefixtures("many_orders")
def test_all_orders_pages_scan_every_partition_at_once_and_follow_the_id_order(
    sharded_cluster: ShardedCluster,
) -> None:
    pages = sharded_cluster.shell(
        "from tests.shards.inside import explain_all_orders; explain_all_orders(50)"
    )
    newest = sharded_cluster.on_coordinator(
        "SELECT id FROM orders_order ORDER BY id DESC LIMIT 100"
    )
    assert pages["ids"] == [row[0] for row in newest]
    _assert_each_scans_every_partition_at_once(pages["plans"])


def test_the_admin_order_list_pages_every_order_once_newest_first_without_offset_or_count(
    sharded_cluster: ShardedCluster,
) -> None:
    walked = sharded_cluster.shell(
        "from tests.shards.inside import walk_admin_order_list; walk_admin_order_list(10)"
    )
    # The admin lists orders with their owner (a join): those of existing users, all of them.
    listed = sharded_cluster.on_coordinator(
        "SELECT o.id FROM orders_order o JOIN users_user u ON u.id = o.owner_id ORDER BY o.id DESC"
    )
    assert walked["seeded"] == 43
    assert len(listed) >= 43
    assert walked["ids"] == [row[0] for row in listed]
    assert walked["sql"]
    for query in walked["sql"]:
        assert "OFFSET" not in query.upper(), query
        assert "COUNT(" not in query.upper(), query
        assert "MIN(" not in query.upper(), query  # no date_hierarchy over every shard
        assert "DISTINCT" not in query.upper(), query
    # Each page reads every partition at once, not merged one shard after the other.
    _assert_each_scans_every_partition_at_once(walked["plans"])


def _assert_each_scans_every_partition_at_once(plans: list[list[str]]) -> None:
    assert plans
    for plan in plans:
        text = "\n".join(plan)
        assert "Merge Append" not in text
        assert "OFFSET" not in text.upper()
        scanned = sorted(
            line.split(" on ")[1].split()[0] for line in plan if "Async Foreign Scan" in line
        )
        assert scanned == sorted(f"orders_order_p{r}" for r in range(16)), text
