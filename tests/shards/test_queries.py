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
    assert pages["plans"]
    for plan in pages["plans"]:
        text = "\n".join(plan)
        assert "Merge Append" not in text
        assert "OFFSET" not in text.upper()
        scanned = sorted(
            line.split(" on ")[1].split()[0] for line in plan if "Async Foreign Scan" in line
        )
        assert scanned == sorted(f"orders_order_p{r}" for r in range(16)), text
