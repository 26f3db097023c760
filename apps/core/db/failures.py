"""Tell a failure of the connection to the app's own database from an error in a query.

A connection failure (the server refused, dropped or cancelled it: a failover, a
restart, a statement timeout) is transient: the request answers 503 and the client
retries with its Idempotency-Key; a consumer closes the connection and retries.
"""

from __future__ import annotations

from django.db import InterfaceError, InternalError, OperationalError


def is_connection_failure(exc: BaseException) -> bool:
    """Return whether ``exc`` is the database connection failing, not the query.

    Besides Django's OperationalError and InterfaceError, psycopg raises an
    InternalError without a SQLSTATE when the connection's protocol state no longer
    matches the server's, e.g. a COMMIT that got two results because the server
    terminated the session meanwhile (seen in a Patroni switchover). An InternalError
    the server sent (it has a SQLSTATE) is an error in the query and is not one.
    """
    if isinstance(exc, OperationalError | InterfaceError):
        return True
    return isinstance(exc, InternalError) and getattr(exc.__cause__, "sqlstate", "") is None
