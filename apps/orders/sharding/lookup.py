"""Find an order's owner from its id alone, on the one shard the id names."""

from __future__ import annotations

from django.db import connection

from apps.orders.sharding.ddl import ID_PARTITION_BITS, ID_SEQUENCE_BITS
from apps.orders.sharding.layout import partition_count, partition_name


def partition_of_id(row_id: int) -> int | None:
    """Return the logical partition a shard-made id was made in, or None if it names none."""
    remainder = (row_id >> ID_SEQUENCE_BITS) & ((1 << ID_PARTITION_BITS) - 1)
    if row_id <= 0 or remainder >= partition_count():
        return None
    return remainder


def owner_of_order(order_id: int) -> int | None:
    """Return the owner of order ``order_id``, read from the one partition its id names.

    A query by id alone cannot be pruned (the tables are partitioned by owner), so it
    would ask every shard; this asks one. None when there is no such order.
    """
    remainder = partition_of_id(order_id)
    if remainder is None:
        return None
    table = connection.ops.quote_name(partition_name("orders_order", remainder))
    with connection.cursor() as cursor:
        cursor.execute(f"SELECT owner_id FROM {table} WHERE id = %s", [order_id])  # noqa: S608 -- a partition name made here
        row = cursor.fetchone()
    return int(row[0]) if row else None
