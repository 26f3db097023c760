"""Helpers for the routing tests that use a real streaming replica.

Ordinary tests see every replica alias as a mirror of the primary's test database.
``live_replica`` points one alias at a real replica for the length of a test: the
replica already holds the test database, which physical replication copied from the
primary when pytest-django created it there.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

import dj_database_url
import psycopg
import pytest
from django.conf import settings
from django.db import connections

from apps.core.db.health import monitor
from apps.core.db.lsn import parse_lsn


def mirror_replicas() -> None:
    """Share the primary's settings dict with every replica alias, in every thread.

    Django repoints only the current thread's connection at a test mirror; a thread
    started by a test would otherwise build its replica connection from the replica's
    own URL.
    """
    for alias in settings.DATABASE_REPLICA_WEIGHTS:
        _replace_settings(alias, connections.settings["default"])


def _replace_settings(alias: str, database: dict[str, Any] | None) -> None:
    """Point ``alias`` at ``database`` (None: remove it), closing this thread's connection."""
    if alias in connections.settings:
        connections[alias].close()
        with contextlib.suppress(AttributeError):  # never opened in this thread
            del connections[alias]
    if database is None:
        connections.settings.pop(alias, None)
    else:
        connections.settings[alias] = database


@contextmanager
def mirrored_alias(alias: str) -> Iterator[str]:
    """Add ``alias`` as one more mirror of the primary for the block.

    Enter it before pytest-django sets a test up (a module-scoped fixture), so the
    test may list it in ``databases`` and ``live_replica`` may point it at a replica.
    """
    _replace_settings(alias, connections.settings["default"])
    try:
        yield alias
    finally:
        _replace_settings(alias, None)


def replica_urls() -> list[str]:
    """Return the URLs of the suite's replicas; the suite needs at least one."""
    urls = [url.partition("#")[0] for url in settings.DATABASE_REPLICA_URLS]
    if not urls:
        pytest.fail("no replica: set DATABASE_REPLICA_URLS or let the harness start one")
    return urls


def replica_test_db_url(url: str) -> str:
    """Return ``url`` pointed at the primary's test database (which the replica holds)."""
    base = url.rsplit("/", 1)[0]
    return f"{base}/{connections.settings['default']['NAME']}"


@contextmanager
def live_replica(alias: str, url: str, weight: int = 1) -> Iterator[str]:
    """Point ``alias`` at the real server at ``url`` (test database) for the block."""
    primary = connections.settings["default"]
    parsed = dj_database_url.parse(url)
    database = {**primary, **{k: parsed[k] for k in ("HOST", "PORT", "USER", "PASSWORD")}}  # type: ignore[literal-required]
    # Still a mirror to the test framework: never flushed or created, only read.
    database["TEST"] = {**primary["TEST"], "MIRROR": "default"}
    saved_weights = dict(settings.DATABASE_REPLICA_WEIGHTS)
    configured = alias in connections.settings
    settings.DATABASE_REPLICA_WEIGHTS[alias] = weight
    _replace_settings(alias, database)
    try:
        monitor.ensure_started()
        monitor.probe(alias)
        yield alias
    finally:
        _replace_settings(alias, primary if configured else None)
        settings.DATABASE_REPLICA_WEIGHTS.clear()
        settings.DATABASE_REPLICA_WEIGHTS.update(saved_weights)


@contextmanager
def replay_paused(url: str) -> Iterator[None]:
    """Pause WAL replay on the replica at ``url`` for the block; always resume it."""
    with psycopg.connect(replica_test_db_url(url), autocommit=True) as conn:
        conn.execute("SELECT pg_wal_replay_pause()")
        try:
            yield
        finally:
            conn.execute("SELECT pg_wal_replay_resume()")


def primary_lsn() -> int:
    """Return the primary's current WAL insert position (own connection, autocommit)."""
    url = settings.DATABASE_URL.rsplit("/", 1)[0] + "/postgres"
    with psycopg.connect(url, autocommit=True) as conn:
        row = conn.execute("SELECT pg_current_wal_insert_lsn()::text").fetchone()
    lsn = parse_lsn(row[0] if row else None)
    assert lsn is not None
    return lsn


class _Counter:
    """Execute wrapper that counts the statements one alias runs."""

    def __init__(self, counts: dict[str, int], alias: str) -> None:
        self.counts = counts
        self.alias = alias

    def __call__(self, execute: Any, sql: str, params: Any, many: bool, context: Any) -> Any:
        self.counts[self.alias] += 1
        return execute(sql, params, many, context)


@contextmanager
def statements(*aliases: str) -> Iterator[dict[str, int]]:
    """Count the statements each alias runs in this thread inside the block.

    Through Django's ``connection.execute_wrapper()``, which (unlike
    ``CaptureQueriesContext``) opens no connection: a stopped replica counts 0.
    """
    counts = dict.fromkeys(aliases, 0)
    with contextlib.ExitStack() as stack:
        for alias in aliases:
            stack.enter_context(connections[alias].execute_wrapper(_Counter(counts, alias)))
        yield counts


def wait_for(check: Callable[[], bool], timeout: float = 30.0, what: str = "condition") -> None:
    """Wait until ``check()`` holds, re-checked at each probe of the replica monitor.

    ``check`` reads the monitor's statuses; fail the test after ``timeout`` seconds.
    """
    if not monitor.wait_until(check, timeout):
        pytest.fail(f"{what} did not happen within {timeout} s")


def replicated(alias: str, what: str = "replication", timeout: float = 30.0) -> None:
    """Wait until the monitor has seen ``alias`` replay past the primary's position now."""
    target = primary_lsn()
    wait_for(lambda: (monitor.status(alias).replay_lsn or -1) >= target, timeout, what)


@contextmanager
def caught_up_replica(alias: str) -> Iterator[str]:
    """Point ``alias`` at the suite's first replica, once it has caught up; yield its URL."""
    url = replica_urls()[0]
    with live_replica(alias, url):
        caught_up = primary_lsn()
        wait_for(lambda: monitor.usable(alias, caught_up), what="the replica catching up")
        yield url
