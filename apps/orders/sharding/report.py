"""What ``manage.py shards`` shows: where partitions live, rows per shard, misplaced rows."""

from __future__ import annotations

from dataclasses import dataclass

import psycopg
from django.db import connection

from apps.orders.sharding.layout import (
    SHARDED_TABLES,
    partition_count,
    partition_name,
    server_name,
    shard_urls,
)


@dataclass(frozen=True)
class Placement:
    """One logical partition of a table and the server that holds it."""

    table: str
    remainder: int
    server: str


def partition_placements() -> list[Placement]:
    """Return every foreign partition the coordinator routes to, read from its catalog."""
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT parent.relname, child.relname, server.srvname "
            "FROM pg_inherits i "
            "JOIN pg_class parent ON parent.oid = i.inhparent "
            "JOIN pg_class child ON child.oid = i.inhrelid "
            "JOIN pg_foreign_table ft ON ft.ftrelid = child.oid "
            "JOIN pg_foreign_server server ON server.oid = ft.ftserver "
            "WHERE parent.relname = ANY(%s) ORDER BY parent.relname, child.relname",
            [[table.name for table in SHARDED_TABLES]],
        )
        rows = cursor.fetchall()
    return sorted(
        (Placement(table, int(child.rsplit("_p", 1)[1]), server) for table, child, server in rows),
        key=lambda p: (p.table, p.remainder),
    )


def shard_row_counts() -> dict[str, dict[str, int]]:
    """Return each shard's own row count of every sharded table, asked of the shard itself."""
    counts: dict[str, dict[str, int]] = {}
    for number, url in enumerate(shard_urls(), start=1):
        with psycopg.connect(url, connect_timeout=5) as conn:
            counts[server_name(number)] = {
                table.name: _count(conn, f"SELECT count(*) FROM {table.name}")  # noqa: S608 -- table names are constants
                for table in SHARDED_TABLES
            }
    return counts


def misplaced_rows() -> dict[str, int]:
    """Return, per table, the rows a partition holds that hash to another partition.

    Asked through the coordinator, partition by partition: PostgreSQL does not check a
    foreign partition's rows against its bounds, so this is the check that every row
    is where pruned lookups will look for it. Also counts order lines whose owner is
    not their order's (a line on another shard than its order).
    """
    modulus, found = partition_count(), {}
    with connection.cursor() as cursor:
        for table in SHARDED_TABLES:
            total = 0
            for remainder in range(modulus):
                # Keys counted on the shard, hashed here: the coordinator's catalog
                # names the partitioned table, the shard's would not.
                cursor.execute(
                    f"WITH keys AS MATERIALIZED (SELECT {table.key} AS key, count(*) AS n "  # noqa: S608 -- constants
                    f"FROM {partition_name(table.name, remainder)} GROUP BY 1) "
                    "SELECT coalesce(sum(n), 0) FROM keys "
                    "WHERE NOT satisfies_hash_partition(%s::regclass, %s, %s, key)",
                    [table.name, modulus, remainder],
                )
                total += int(cursor.fetchone()[0])
            found[table.name] = total
        cursor.execute(
            "SELECT count(*) FROM orders_orderline line WHERE NOT EXISTS (SELECT 1 FROM "
            "orders_order o WHERE o.id = line.order_id AND o.owner_id = line.owner_id)"
        )
        found["orders_orderline (away from its order)"] = int(cursor.fetchone()[0])
    return found


def _count(conn: psycopg.Connection[tuple[int]], sql: str) -> int:
    row = conn.execute(sql).fetchone()
    return int(row[0]) if row else 0
