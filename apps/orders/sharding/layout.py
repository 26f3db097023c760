"""Which tables are sharded, by which column, and where each logical partition lives.

Every table here is partitioned ``HASH (<key>)`` into ``DATABASE_SHARD_PARTITIONS``
logical partitions; partition ``r`` lives on shard ``r mod n`` (n shard servers), so
an owner's order, its lines, its outbox events and its idempotency records share one
partition and therefore one server.
"""

from __future__ import annotations

from dataclasses import dataclass

from django.conf import settings
from psycopg.conninfo import conninfo_to_dict


@dataclass(frozen=True)
class ShardedTable:
    """A table partitioned by ``key``; ``shard_ids`` tables get their ids on the shard."""

    name: str
    key: str
    shard_ids: bool


SHARDED_TABLES = (
    ShardedTable("orders_order", "owner_id", shard_ids=True),
    ShardedTable("orders_orderline", "owner_id", shard_ids=True),
    ShardedTable("core_outboxevent", "shard_key", shard_ids=False),
    ShardedTable("core_idempotencyrecord", "owner_id", shard_ids=True),
)
# Lines reference their order within the partition: a line away from its order is refused.
PARTITION_FOREIGN_KEYS = (("orders_orderline", "order_id", "orders_order"),)


def sharded() -> bool:
    """Return whether orders are sharded (DATABASE_SHARD_URLS is set)."""
    return bool(settings.DATABASE_SHARD_URLS)


def shard_urls() -> list[str]:
    """Return the shard servers' URLs, shard 1 first."""
    return list(settings.DATABASE_SHARD_URLS)


def partition_count() -> int:
    """Return the number of logical partitions (the HASH modulus)."""
    count: int = settings.DATABASE_SHARD_PARTITIONS
    return count


def server_name(shard: int) -> str:
    """Return the coordinator's foreign server name of shard number ``shard`` (1-based)."""
    return f"shard_{shard}"


def shard_of_partition(remainder: int) -> int:
    """Return the shard number (1-based) that holds logical partition ``remainder``."""
    return remainder % len(shard_urls()) + 1


def partitions_of_shard(shard: int) -> list[int]:
    """Return the logical partitions that shard number ``shard`` holds."""
    return [r for r in range(partition_count()) if shard_of_partition(r) == shard]


def partition_name(table: str, remainder: int) -> str:
    """Return the name of ``table``'s partition ``remainder``, alike on coordinator and shard."""
    return f"{table}_p{remainder}"


def connection_options(url: str) -> dict[str, str]:
    """Return libpq's keywords (host, port, dbname, user, password) of a shard URL."""
    return {key: str(value) for key, value in conninfo_to_dict(url).items() if value is not None}
