"""The servers the database reaches for (postgres_fdw shards): which partitions of a
table each holds, and telling their failures from others."""

from __future__ import annotations

from django.conf import settings
from django.db import OperationalError, connections

# SQLSTATEs of a server that cannot be reached or did not answer in time: connection
# exceptions (08…), and a server shutting down, crashed or still starting, as relayed.
_UNREACHABLE_PREFIXES = ("08", "57P0")
# A statement cancelled by statement_timeout: with shards, the bound on a stalled one.
_STATEMENT_TIMEOUT = "57014"
# How postgres_fdw marks what it relays from a shard.
_REMOTE_CONTEXT = "remote SQL command"
_REMOTE_CONNECT = "could not connect to server"


def is_remote_server_failure(exc: BaseException) -> bool:
    """Return whether ``exc`` is the coordinator reporting a shard it could not reach.

    Only with DATABASE_SHARD_URLS. PostgreSQL relays a shard's failure with a SQLSTATE
    and marks it as postgres_fdw's (the remote command, or the server it could not
    connect to); a statement past statement_timeout counts too, as that is the bound on
    a shard that stopped answering. The app's own database failing (its connection
    lost, a replica shutting down) is none of these and is left to its own handling.
    """
    if not settings.DATABASE_SHARD_URLS or not isinstance(exc, OperationalError):
        return False
    cause = exc.__cause__
    sqlstate = getattr(cause, "sqlstate", None)
    if not isinstance(sqlstate, str):
        return False
    if sqlstate == _STATEMENT_TIMEOUT:
        return True
    diag = getattr(cause, "diag", None)
    context = str(getattr(diag, "context", "") or "")
    message = str(getattr(diag, "message_primary", "") or "")
    relayed = _REMOTE_CONTEXT in context or message.startswith(_REMOTE_CONNECT)
    return relayed and sqlstate.startswith(_UNREACHABLE_PREFIXES)


# A table's partitions that are foreign tables, with the foreign server of each.
_FOREIGN_PARTITIONS_SQL = """
    SELECT s.srvname, c.relname
    FROM pg_inherits i
    JOIN pg_class c ON c.oid = i.inhrelid
    JOIN pg_foreign_table t ON t.ftrelid = c.oid
    JOIN pg_foreign_server s ON s.oid = t.ftserver
    WHERE i.inhparent = to_regclass(%s)
    ORDER BY s.srvname, c.relname
"""


def foreign_partitions(table: str, using: str) -> dict[str, list[str]]:
    """Return ``table``'s foreign partitions by foreign server, from the catalog.

    Only with DATABASE_SHARD_URLS; {} otherwise, without a query.
    """
    if not settings.DATABASE_SHARD_URLS:
        return {}
    with connections[using].cursor() as cursor:
        cursor.execute(_FOREIGN_PARTITIONS_SQL, [table])
        rows = cursor.fetchall()
    servers: dict[str, list[str]] = {}
    for server, partition in rows:
        servers.setdefault(server, []).append(partition)
    return servers
