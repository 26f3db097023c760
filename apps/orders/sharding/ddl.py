"""The DDL of sharding: shard tables, the coordinator's foreign partitions, the id scheme.

A table's shape is read from the plain table Django's migrations created on the
coordinator (columns, CHECK constraints, indexes), so the shards hold exactly what
the models declare. DDL is not propagated by postgres_fdw: every statement here runs
on the coordinator or on each shard explicitly.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from apps.orders.sharding.layout import (
    PARTITION_FOREIGN_KEYS,
    ShardedTable,
    connection_options,
    partition_count,
    partition_name,
    server_name,
    shard_of_partition,
)

# Ids: 41 bits of milliseconds since 2026-01-01, 13 bits of logical partition, 10 bits of
# a per-partition sequence (Instagram's layout): unique across shards without any
# coordination, roughly time-ordered, and the partition can be read back from the id.
ID_EPOCH_MS = 1_767_225_600_000
ID_PARTITION_BITS = 13
ID_SEQUENCE_BITS = 10


def id_at_ms(epoch_ms: int) -> int:
    """Return the lowest id a shard hands out at Unix time ``epoch_ms`` (milliseconds)."""
    return (epoch_ms - ID_EPOCH_MS) << (ID_PARTITION_BITS + ID_SEQUENCE_BITS)


_INDEX_RE = re.compile(r"^CREATE (UNIQUE )?INDEX (\S+) ON (\S+) (USING .*)$")

# postgres_fdw runs remote statements with search_path = pg_catalog: names are qualified.
SHARD_FUNCTIONS = f"""
CREATE OR REPLACE FUNCTION highscale_next_id(part integer, seq regclass) RETURNS bigint
LANGUAGE sql VOLATILE AS $$
  SELECT ((floor(extract(epoch FROM clock_timestamp()) * 1000)::bigint - {ID_EPOCH_MS})
          << {ID_PARTITION_BITS + ID_SEQUENCE_BITS})
       | (part::bigint << {ID_SEQUENCE_BITS})
       | (nextval(seq) % {1 << ID_SEQUENCE_BITS})
$$;
CREATE OR REPLACE FUNCTION highscale_set_id() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
  IF NEW.id IS NULL THEN
    NEW.id := public.highscale_next_id(TG_ARGV[0]::integer, TG_ARGV[1]::regclass);
  END IF;
  RETURN NEW;
END $$;
CREATE OR REPLACE FUNCTION highscale_refuse_shard_key_change() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
  IF to_jsonb(NEW) -> TG_ARGV[0] IS DISTINCT FROM to_jsonb(OLD) -> TG_ARGV[0] THEN
    RAISE EXCEPTION 'the shard key %.% cannot change', TG_TABLE_NAME, TG_ARGV[0]
      USING ERRCODE = 'check_violation';
  END IF;
  RETURN NEW;
END $$;
"""  # noqa: S608 -- constants only, no input


@dataclass(frozen=True)
class TableShape:
    """What a plain table declares: its columns, CHECK constraints and indexes."""

    table: ShardedTable
    columns: list[tuple[str, str, bool]]
    checks: list[tuple[str, str]]
    indexes: list[tuple[bool, str, str]]


def quote(value: str) -> str:
    """Return ``value`` as an SQL string literal (standard_conforming_strings)."""
    return "'" + value.replace("'", "''") + "'"


def read_shape(cursor: Any, table: ShardedTable) -> TableShape:
    """Read the shape of the plain table ``table.name`` through ``cursor``."""
    cursor.execute(
        "SELECT attname, format_type(atttypid, atttypmod), attnotnull FROM pg_attribute "
        "WHERE attrelid = %s::regclass AND attnum > 0 AND NOT attisdropped ORDER BY attnum",
        [table.name],
    )
    columns = [(name, kind, bool(not_null)) for name, kind, not_null in cursor.fetchall()]
    cursor.execute(
        "SELECT conname, pg_get_constraintdef(oid) FROM pg_constraint "
        "WHERE conrelid = %s::regclass AND contype = 'c' ORDER BY conname",
        [table.name],
    )
    checks = [(name, definition) for name, definition in cursor.fetchall()]
    cursor.execute(
        "SELECT pg_get_indexdef(indexrelid) FROM pg_index WHERE indrelid = %s::regclass "
        "ORDER BY indexrelid",
        [table.name],
    )
    indexes = []
    for (definition,) in cursor.fetchall():
        match = _INDEX_RE.match(definition)
        if match is None:
            raise ValueError(f"Unexpected index definition: {definition}")
        indexes.append((bool(match[1]), match[2], match[4]))
    return TableShape(table=table, columns=columns, checks=checks, indexes=indexes)


def _column_list(shape: TableShape, *, not_null: bool) -> str:
    return ", ".join(
        f'"{name}" {kind}' + (" NOT NULL" if null_refused and not_null else "")
        for name, kind, null_refused in shape.columns
    )


def shard_table_ddl(shape: TableShape, remainders: Sequence[int]) -> list[str]:
    """Return the statements that create ``shape``'s table on a shard holding ``remainders``.

    The shard's table is itself ``PARTITION BY HASH`` with only those remainders, so a
    row of another partition finds no partition here and is refused; the shard key
    cannot change (trigger). Every statement may run again.
    """
    table, modulus = shape.table, partition_count()
    checks = "".join(f", CONSTRAINT {name} {definition}" for name, definition in shape.checks)
    statements = [
        f"CREATE TABLE IF NOT EXISTS {table.name} ({_column_list(shape, not_null=True)}{checks}) "
        f'PARTITION BY HASH ("{table.key}")',
        f"CREATE OR REPLACE TRIGGER {table.name}_shard_key_fixed BEFORE UPDATE ON {table.name} "
        f"FOR EACH ROW EXECUTE FUNCTION highscale_refuse_shard_key_change({quote(table.key)})",
    ]
    for remainder in remainders:
        leaf = partition_name(table.name, remainder)
        statements.append(
            f"CREATE TABLE IF NOT EXISTS {leaf} PARTITION OF {table.name} "
            f"FOR VALUES WITH (MODULUS {modulus}, REMAINDER {remainder})"
        )
        for unique, name, rest in shape.indexes:
            kind = "UNIQUE INDEX" if unique else "INDEX"
            statements.append(f"CREATE {kind} IF NOT EXISTS {name}_p{remainder} ON {leaf} {rest}")
        if table.shard_ids:
            sequence = f"{leaf}_id_seq"
            statements += [
                f"CREATE SEQUENCE IF NOT EXISTS {sequence}",
                f"CREATE OR REPLACE TRIGGER {leaf}_id BEFORE INSERT ON {leaf} FOR EACH ROW "
                f"EXECUTE FUNCTION highscale_set_id({remainder}, {quote('public.' + sequence)})",
            ]
    return statements


def shard_foreign_keys_ddl(remainders: Sequence[int]) -> list[str]:
    """Return the per-partition foreign keys (a line and its order share a partition)."""
    statements = []
    for table, column, target in PARTITION_FOREIGN_KEYS:
        for remainder in remainders:
            leaf, target_leaf = partition_name(table, remainder), partition_name(target, remainder)
            name = f"{leaf}_{column}_fk"
            # Dropped and added again, so the statement pair may run again.
            statements += [
                f"ALTER TABLE {leaf} DROP CONSTRAINT IF EXISTS {name}",
                f'ALTER TABLE {leaf} ADD CONSTRAINT {name} FOREIGN KEY ("{column}") '
                f"REFERENCES {target_leaf} (id) ON DELETE CASCADE DEFERRABLE INITIALLY DEFERRED",
            ]
    return statements


def coordinator_servers_ddl(urls: Sequence[str], connect_timeout: int) -> list[str]:
    """Return the statements that declare every shard as a postgres_fdw server."""
    statements = ["CREATE EXTENSION IF NOT EXISTS postgres_fdw"]
    for number, url in enumerate(urls, start=1):
        options = connection_options(url)
        server = {key: options[key] for key in ("host", "port", "dbname") if key in options}
        server |= {
            # All-shard scans run on every shard at once, not one after the other.
            "async_capable": "true",
            "connect_timeout": str(connect_timeout),
            "keepalives_idle": "5",
            "keepalives_interval": "2",
            "keepalives_count": "2",
        }
        user = {key: options[key] for key in ("user", "password") if key in options}
        name = server_name(number)
        statements.append(
            f"CREATE SERVER IF NOT EXISTS {name} FOREIGN DATA WRAPPER postgres_fdw "
            f"OPTIONS ({', '.join(f'{k} {quote(v)}' for k, v in server.items())})"
        )
        login = ", ".join(f"{key} {quote(value)}" for key, value in user.items())
        statements.append(
            f"CREATE USER MAPPING IF NOT EXISTS FOR PUBLIC SERVER {name}"
            + (f" OPTIONS ({login})" if login else "")
        )
    return statements


def coordinator_table_ddl(shape: TableShape) -> list[str]:
    """Return the statements that replace the plain table by a parent of foreign partitions.

    The parent has no index: PostgreSQL cannot build one over foreign partitions; the
    shards hold the keys and indexes. Ids come from the shards (no column default).
    """
    table, modulus = shape.table, partition_count()
    statements = [
        f"DROP TABLE {table.name} CASCADE",
        f"CREATE TABLE {table.name} ({_column_list(shape, not_null=False)}) "
        f'PARTITION BY HASH ("{table.key}")',
    ]
    for remainder in range(modulus):
        leaf = partition_name(table.name, remainder)
        statements.append(
            f"CREATE FOREIGN TABLE {leaf} PARTITION OF {table.name} "
            f"FOR VALUES WITH (MODULUS {modulus}, REMAINDER {remainder}) "
            f"SERVER {server_name(shard_of_partition(remainder))} "
            f"OPTIONS (table_name {quote(leaf)})"
        )
    return statements
