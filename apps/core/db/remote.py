"""Tell a failure of a server the database reached for (a postgres_fdw shard) from others."""

from __future__ import annotations

from django.db import OperationalError

# SQLSTATE classes and codes of a server that cannot be reached or did not answer in
# time: connection exceptions (08…), a statement cancelled by statement_timeout, and a
# server shutting down, crashed or still starting (the shard's own report, relayed).
_UNREACHABLE_PREFIXES = ("08",)
_UNREACHABLE_CODES = frozenset({"57014", "57P01", "57P02", "57P03"})


def is_remote_server_failure(exc: BaseException) -> bool:
    """Return whether ``exc`` is the database reporting a server it could not reach.

    PostgreSQL raises these with a SQLSTATE (a shard behind postgres_fdw that is down,
    or that did not answer within statement_timeout). A database the app itself
    cannot reach fails in the client library, without a SQLSTATE, and is not one.
    """
    if not isinstance(exc, OperationalError):
        return False
    sqlstate = getattr(exc.__cause__, "sqlstate", None)
    if not isinstance(sqlstate, str):
        return False
    return sqlstate.startswith(_UNREACHABLE_PREFIXES) or sqlstate in _UNREACHABLE_CODES
