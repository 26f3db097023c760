"""Set up the coordinator and every shard; run by ``migrate`` (orders 0004) when sharded."""

from __future__ import annotations

import logging
from typing import Any

import psycopg
from django.conf import settings

from apps.orders.sharding.ddl import (
    SHARD_FUNCTIONS,
    TableShape,
    coordinator_servers_ddl,
    coordinator_table_ddl,
    read_shape,
    shard_foreign_keys_ddl,
    shard_table_ddl,
)
from apps.orders.sharding.layout import SHARDED_TABLES, partitions_of_shard, shard_urls

logger = logging.getLogger(__name__)


def shards_setup(cursor: Any) -> None:
    """Create the shards' tables, then turn the coordinator's plain tables into parents.

    ``cursor`` is on the coordinator, inside the migration's transaction. The shards
    commit first, each in one transaction of statements that may all run again, so a
    migrate that failed half-way is simply run again. A table already partitioned on
    the coordinator is left as it is.
    """
    plain = [table for table in SHARDED_TABLES if not _is_partitioned(cursor, table.name)]
    shapes = [read_shape(cursor, table) for table in plain]
    for number, url in enumerate(shard_urls(), start=1):
        _set_up_shard(url, shapes, partitions_of_shard(number))
        logger.info("shards: shard %d set up (%s)", number, url)
    for statement in coordinator_servers_ddl(
        shard_urls(), settings.DATABASE_SHARD_CONNECT_TIMEOUT_SECONDS
    ):
        cursor.execute(statement)
    for shape in shapes:
        for statement in coordinator_table_ddl(shape):
            cursor.execute(statement)


def _set_up_shard(url: str, shapes: list[TableShape], remainders: list[int]) -> None:
    with psycopg.connect(url, connect_timeout=10) as conn, conn.transaction():
        conn.execute(SHARD_FUNCTIONS)
        for shape in shapes:
            for statement in shard_table_ddl(shape, remainders):
                conn.execute(statement)
        if shapes:
            for statement in shard_foreign_keys_ddl(remainders):
                conn.execute(statement)


def _is_partitioned(cursor: Any, table: str) -> bool:
    cursor.execute("SELECT relkind FROM pg_class WHERE oid = %s::regclass", [table])
    row = cursor.fetchone()
    return row is not None and row[0] == "p"
