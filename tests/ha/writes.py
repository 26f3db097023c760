"""Writes through a Django alias of the HA cluster, and where they landed."""

from __future__ import annotations

import contextlib
import time
import uuid
from decimal import Decimal

import psycopg
from django.db import DatabaseError, connections

from apps.orders.models import Product


def write(alias: str, tag: str) -> str:
    """Create a product through ``alias`` (one autocommitted INSERT); return its sku."""
    sku = f"{tag}-{uuid.uuid4().hex[:12]}"
    Product.objects.using(alias).create(sku=sku, name=tag, price=Decimal("1.00"), stock=1)
    return sku


def server_port(alias: str) -> int:
    """Return the port of the PostgreSQL server ``alias`` is connected to."""
    with connections[alias].cursor() as cursor:
        cursor.execute("SELECT inet_server_port()")
        row = cursor.fetchone()
    return int(row[0])


def write_until(alias: str, tag: str, deadline: float) -> str | None:
    """Retry ``write`` on fresh connections until it succeeds or ``deadline`` passes.

    Return the sku written, or None. A failed attempt closes the connection, as
    Django does at the end of a request whose connection broke.
    """
    while time.monotonic() < deadline:
        try:
            return write(alias, tag)
        except DatabaseError:
            with contextlib.suppress(DatabaseError):
                connections[alias].close()
            time.sleep(0.1)
    return None


def skus_on(url: str, prefix: str) -> set[str]:
    """Return the skus starting with ``prefix`` on the server at ``url`` (direct)."""
    with psycopg.connect(url, autocommit=True, connect_timeout=5) as conn:
        rows = conn.execute(
            "SELECT sku FROM orders_product WHERE sku LIKE %s", [f"{prefix}%"]
        ).fetchall()
    return {row[0] for row in rows}
