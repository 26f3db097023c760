"""A broken connection to the app's own database is told from an error in the query."""

from __future__ import annotations

import psycopg
import pytest
from django.db import DatabaseError, InternalError, connection, transaction

from apps.core.db.failures import is_connection_failure

pytestmark = pytest.mark.django_db(transaction=True)


def _wrapped(error: Exception) -> DatabaseError:
    """Return ``error`` as Django's cursor and commit wrappers re-raise it."""
    with pytest.raises(DatabaseError) as raised, connection.wrap_database_errors:
        raise error
    return raised.value


def test_a_commit_that_lost_the_protocol_state_is_a_connection_failure() -> None:
    # What psycopg raised at COMMIT during a Patroni switchover (the server ended the
    # session meanwhile); the API answered 500 for it.
    wrapped = _wrapped(psycopg.InternalError("received 2 results from command 'COMMIT'"))

    assert isinstance(wrapped, InternalError)
    assert is_connection_failure(wrapped)


def _in_an_aborted_transaction() -> None:
    with transaction.atomic(), connection.cursor() as cursor:
        with pytest.raises(DatabaseError):
            cursor.execute("SELECT 1 / 0")
        # The transaction is aborted: PostgreSQL refuses this with 25P02.
        cursor.execute("SELECT 1")


def test_an_internal_error_the_server_sent_is_an_error_in_the_query() -> None:
    with pytest.raises(InternalError) as raised:
        _in_an_aborted_transaction()

    assert getattr(raised.value.__cause__, "sqlstate", None) == "25P02"
    assert not is_connection_failure(raised.value)


def test_a_refused_connection_is_a_connection_failure() -> None:
    wrapped = _wrapped(psycopg.OperationalError("connection refused"))

    assert is_connection_failure(wrapped)
    assert not is_connection_failure(ValueError("not a database error"))
