"""A raw-SQL write pins the rest of the scope to the primary and earns a read-after token."""

from __future__ import annotations

from collections.abc import Iterator
from decimal import Decimal

import psycopg
import pytest
from django.db import connection
from django.http import HttpRequest, JsonResponse
from django.urls import include, path
from django.views.decorators.csrf import csrf_exempt
from rest_framework.test import APIClient

from apps.core.db.health import monitor
from apps.core.db.lsn import parse_lsn
from apps.core.db.middleware import READ_AFTER_HEADER
from apps.core.db.state import routing_scope
from apps.core.db.writes import is_write
from apps.orders.models import Product
from tests.core.db.live import (
    live_replica,
    primary_lsn,
    replay_paused,
    replica_test_db_url,
    replica_urls,
    replicated,
    statements,
    wait_for,
)

ALIAS = "replica_1"


@csrf_exempt
def rename_raw_then_read(request: HttpRequest, product_id: int) -> JsonResponse:
    with connection.cursor() as cursor:
        cursor.execute("UPDATE orders_product SET name = %s WHERE id = %s", ["Raw", product_id])
    seen = Product.objects.filter(pk=product_id).values_list("name", flat=True).first()
    return JsonResponse({"seen": seen})


urlpatterns = [
    path("test/rename-raw/<int:product_id>", rename_raw_then_read),
    path("", include("config.urls")),
]


def _name_on_replica(url: str, product_id: int) -> str | None:
    with psycopg.connect(replica_test_db_url(url), autocommit=True) as conn:
        row = conn.execute("SELECT name FROM orders_product WHERE id = %s", (product_id,))
        found = row.fetchone()
    return None if found is None else str(found[0])


@pytest.fixture
def replica(settings) -> Iterator[str]:
    settings.DATABASE_REPLICA_MAX_LAG_SECONDS = 3600
    url = replica_urls()[0]
    with live_replica(ALIAS, url):
        caught_up = primary_lsn()
        wait_for(lambda: monitor.usable(ALIAS, caught_up), what="the replica catching up")
        yield url


@pytest.mark.parametrize(
    ("sql", "expected"),
    [
        ("UPDATE t SET a = 1", True),
        ("  insert into t values (1)", True),
        ("DELETE FROM t", True),
        ("TRUNCATE t", True),
        ("WITH gone AS (DELETE FROM t RETURNING id) SELECT count(*) FROM gone", True),
        ("SELECT * FROM t", False),
        ("WITH x AS (SELECT 1) SELECT * FROM x", False),
        ('SAVEPOINT "s1"', False),
        ('RELEASE SAVEPOINT "s1"', False),
        ("SET TIME ZONE 'UTC'", False),
        ("SELECT updated_at FROM t", False),
    ],
)
def test_is_write_recognises_statements_that_change_data(sql, expected):
    assert is_write(sql) is expected


@pytest.mark.django_db(transaction=True, databases=["default", ALIAS])
@pytest.mark.urls(__name__)
def test_a_raw_sql_write_pins_the_request_and_returns_a_token_while_replay_is_paused(replica):
    product = Product.objects.create(sku="RAW-1", name="Cooked", price=Decimal("1.00"), stock=1)
    replicated(ALIAS)

    with replay_paused(replica):
        with statements(ALIAS) as counted:
            response = APIClient().post(f"/test/rename-raw/{product.pk}")

        assert response.status_code == 200
        assert response.json() == {"seen": "Raw"}
        assert counted == {ALIAS: 0}
        token = response[READ_AFTER_HEADER]
        assert parse_lsn(token) is not None
        assert _name_on_replica(replica, product.pk) == "Cooked"

        again = APIClient().get(
            f"/api/v1/products/{product.pk}", headers={READ_AFTER_HEADER: token}
        )
        assert again.json()["name"] == "Raw"


@pytest.mark.django_db(transaction=True, databases=["default", ALIAS])
def test_raw_selects_leave_the_scope_free_to_read_the_replica(replica):
    with routing_scope() as state:
        with connection.cursor() as cursor:
            cursor.execute("SELECT count(*) FROM orders_product")
        assert state.wrote is False
        with statements(ALIAS) as counted:
            Product.objects.filter(sku="none").exists()
        assert counted == {ALIAS: 1}
        with connection.cursor() as cursor:
            cursor.execute("DELETE FROM orders_product WHERE sku = %s", ["none"])
        assert state.wrote is True
        with statements(ALIAS) as counted:
            Product.objects.filter(sku="none").exists()
        assert counted == {ALIAS: 0}
