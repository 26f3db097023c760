"""Build the DATABASES entries of the primary and its replicas from their URLs.

Imported by ``config/settings.py``, so nothing here touches Django's settings.
"""

from __future__ import annotations

import re
from typing import Any

import dj_database_url
from django.core.exceptions import ImproperlyConfigured

_WEIGHT_RE = re.compile(r"^weight=([0-9]+)$")


def postgres_database(
    url: str, *, conn_max_age: int, pool_min: int, pool_max: int
) -> dict[str, Any]:
    """Return one PostgreSQL alias; with ``pool_max`` > 0, pooled by psycopg's pool.

    A pooled alias must not keep persistent connections (CONN_MAX_AGE=0): the pool
    holds them instead and lends one to each request.
    """
    pooled = pool_max > 0
    database: dict[str, Any] = dict(
        dj_database_url.parse(
            url, conn_max_age=0 if pooled else conn_max_age, conn_health_checks=not pooled
        )
    )
    # PgBouncer in transaction mode cannot keep a server-side cursor open across
    # transactions, so `.iterator()` must not rely on one.
    database["DISABLE_SERVER_SIDE_CURSORS"] = True
    # django-prometheus's backend is Django's own with cursors that count and time every
    # statement (django_db_execute_total, django_db_query_duration_seconds by alias); it
    # passes its cursor factory in the connection parameters, so pooled connections count.
    database["ENGINE"] = "django_prometheus.db.backends.postgresql"
    options = database.setdefault("OPTIONS", {})
    options.setdefault("connect_timeout", 5)
    if pooled:
        options["pool"] = {"min_size": min(pool_min, pool_max), "max_size": pool_max, "timeout": 10}
    return database


def split_weight(raw: str) -> tuple[str, int]:
    """Split ``postgres://…#weight=2`` into the URL and its weight (default 1)."""
    url, _, fragment = raw.partition("#")
    if not fragment:
        return url, 1
    match = _WEIGHT_RE.match(fragment)
    if match is None or int(match[1]) < 1:
        raise ImproperlyConfigured(
            f"DATABASE_REPLICA_URLS: {fragment!r} after '#' must be weight=N with N >= 1."
        )
    return url, int(match[1])


def replica_databases(
    urls: list[str], *, conn_max_age: int, pool_min: int, pool_max: int
) -> tuple[dict[str, dict[str, Any]], dict[str, int]]:
    """Return the replica aliases (``replica_1``, ``replica_2``, …) and their weights.

    Each is a test mirror of the primary: ordinary tests run inside a transaction on
    the primary's test database, where a second connection would not see their rows.
    """
    databases: dict[str, dict[str, Any]] = {}
    weights: dict[str, int] = {}
    for number, raw in enumerate(urls, start=1):
        url, weight = split_weight(raw)
        alias = f"replica_{number}"
        database = postgres_database(
            url, conn_max_age=conn_max_age, pool_min=pool_min, pool_max=pool_max
        )
        database["TEST"] = {"MIRROR": "default"}
        databases[alias] = database
        weights[alias] = weight
    return databases, weights
