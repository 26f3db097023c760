"""Build the DATABASES entries of the primary and its replicas from their URLs.

Imported by ``config/settings.py``, so nothing here touches Django's settings.
"""

from __future__ import annotations

import re
from typing import Any
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

import dj_database_url
from django.core.exceptions import ImproperlyConfigured

_WEIGHT_RE = re.compile(r"^weight=([0-9]+)$")


def primary_url(url: str) -> str:
    """Return DATABASE_URL in the form dj-database-url parses, multi-host included.

    libpq accepts several servers, either in the query
    (``postgres://u:p@/db?host=h1,h2&port=p1,p2``) or in the authority
    (``postgres://u:p@h1:p1,h2:p2/db``); dj-database-url parses only the first, so the
    second is rewritten into it. libpq tries the hosts in order and keeps the first
    that satisfies ``target_session_attrs``; with several hosts and no such attribute
    it would settle for a read-only standby, so ``read-write`` is added: this URL
    names the primary. Raise ImproperlyConfigured when hosts and ports do not pair up.
    """
    parts = urlsplit(url)
    userinfo, at, hostports = parts.netloc.rpartition("@")
    query = dict(parse_qsl(parts.query, keep_blank_values=True))
    if "," in hostports:
        if "host" in query:
            raise ImproperlyConfigured(
                "DATABASE_URL: give the hosts either after '@' or as ?host=…, not both."
            )
        pairs = [_split_hostport(hostport) for hostport in hostports.split(",")]
        query["host"] = ",".join(host for host, _ in pairs)
        if any(port for _, port in pairs):
            query["port"] = ",".join(port or "5432" for _, port in pairs)
        parts = parts._replace(netloc=f"{userinfo}{at}")
    hosts = [h for h in query.get("host", "").split(",") if h] if "host" in query else []
    if len(hosts) > 1:
        ports = query.get("port", "").split(",") if query.get("port") else []
        if len(ports) > 1 and len(ports) != len(hosts):
            raise ImproperlyConfigured(
                f"DATABASE_URL: {len(hosts)} hosts but {len(ports)} ports; give one port "
                "for all hosts or one per host."
            )
        query.setdefault("target_session_attrs", "read-write")
    return urlunsplit(parts._replace(query=urlencode(query, safe=",")))


def _split_hostport(hostport: str) -> tuple[str, str]:
    """Split ``h:5432`` (or ``[::1]:5432``) into host and port ("" when absent)."""
    host, colon, port = hostport.rpartition(":")
    if not colon or host.endswith(":") or (host.startswith("[") and not host.endswith("]")):
        host, port = hostport, ""
    return host.removeprefix("[").removesuffix("]"), port


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
