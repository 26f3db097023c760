"""WAL positions (LSNs) and the read-after token that carries one between requests."""

from __future__ import annotations

import re

from django.db import connections

from apps.core.db.state import RoutingState
from apps.core.db.topology import live_replicas

# PostgreSQL prints an LSN as two hex halves, e.g. "16/B374D848".
_LSN_RE = re.compile(r"^([0-9A-Fa-f]{1,8})/([0-9A-Fa-f]{1,8})$")


def parse_lsn(raw: str | None) -> int | None:
    """Return the LSN written as ``X/Y`` as an integer, or None when malformed."""
    if not raw:
        return None
    match = _LSN_RE.match(raw.strip())
    if match is None:
        return None
    return (int(match[1], 16) << 32) | int(match[2], 16)


def format_lsn(value: int) -> str:
    """Return the integer LSN in PostgreSQL's ``X/Y`` notation."""
    return f"{value >> 32:X}/{value & 0xFFFFFFFF:X}"


def primary_insert_lsn(alias: str = "default") -> int:
    """Return the primary's current WAL insert position.

    Read after the request's writes committed, it is at or past every commit record
    they produced, so a replica whose replay position reaches it has them all.
    """
    with connections[alias].cursor() as cursor:
        cursor.execute("SELECT pg_current_wal_insert_lsn()::text")
        row = cursor.fetchone()
    lsn = parse_lsn(row[0] if row else None)
    if lsn is None:
        raise RuntimeError("the primary did not report a WAL position")
    return lsn


def settle_read_after(state: RoutingState) -> int | None:
    """Bring the scope's read-after LSN up to date with its writes; return it.

    Query the primary only when the scope wrote since the last call, and only when
    replicas are routed to (with none, or with test mirrors, there is nothing to wait
    for and no query is spent).
    """
    if state.lsn_stale:
        state.lsn_stale = False
        if live_replicas():
            lsn = primary_insert_lsn()
            state.read_after = lsn if state.read_after is None else max(state.read_after, lsn)
    return state.read_after
