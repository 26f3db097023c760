"""Reads follow the WAL position to a real streaming replica; writes and transactions don't."""

from __future__ import annotations

from collections.abc import Iterator
from decimal import Decimal

import psycopg
import pytest
from django.db import transaction
from django.http import HttpRequest, JsonResponse
from django.urls import include, path
from django.views.decorators.csrf import csrf_exempt
from rest_framework.test import APIClient

from apps.core.db.health import monitor
from apps.core.db.lsn import format_lsn, parse_lsn
from apps.core.db.middleware import READ_AFTER_COOKIE, READ_AFTER_HEADER
from apps.core.db.router import ReplicaRouter
from apps.core.db.state import routing_scope
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
pytestmark = pytest.mark.django_db(transaction=True, databases=["default", ALIAS])


@csrf_exempt
def create_then_read(request: HttpRequest) -> JsonResponse:
    product = Product.objects.create(sku="RYW-1", name="Fresh", price=Decimal("1.00"), stock=1)
    seen = Product.objects.filter(pk=product.pk).values_list("name", flat=True).first()
    return JsonResponse({"id": product.pk, "seen": seen})


urlpatterns = [
    path("test/create-then-read", create_then_read),
    path("", include("config.urls")),
]


def _on_replica(url: str, product_id: int) -> int:
    with psycopg.connect(replica_test_db_url(url), autocommit=True) as conn:
        row = conn.execute("SELECT count(*) FROM orders_product WHERE id = %s", (product_id,))
        return int(row.fetchone()[0])  # type: ignore[index]


@pytest.fixture
def replica(settings) -> Iterator[str]:
    settings.DATABASE_REPLICA_MAX_LAG_SECONDS = 3600
    url = replica_urls()[0]
    with live_replica(ALIAS, url):
        caught_up = primary_lsn()
        wait_for(lambda: monitor.usable(ALIAS, caught_up), what="the replica catching up")
        yield url


@pytest.mark.urls(__name__)
def test_a_client_reads_its_own_write_by_wal_position_while_replay_is_paused(replica):
    client = APIClient()
    with replay_paused(replica):
        with statements(ALIAS) as counted:
            created = client.post("/test/create-then-read")

        assert created.status_code == 200
        product_id = created.json()["id"]
        assert created.json()["seen"] == "Fresh"
        assert counted == {ALIAS: 0}
        token = created[READ_AFTER_HEADER]
        assert parse_lsn(token) is not None
        assert created.cookies[READ_AFTER_COOKIE].value == token
        assert _on_replica(replica, product_id) == 0

        # Without the token the lagging replica answers, and has not seen the row.
        stale = APIClient().get(f"/api/v1/products/{product_id}")
        assert stale.status_code == 404

        with statements("default", ALIAS) as counted:
            again = APIClient().get(
                f"/api/v1/products/{product_id}", headers={READ_AFTER_HEADER: token}
            )
        assert again.status_code == 200
        assert again.json()["name"] == "Fresh"
        assert counted == {"default": 1, ALIAS: 0}

        # The browser path: the cookie set by the write carries the same token.
        by_cookie = client.get(f"/api/v1/products/{product_id}")
        assert by_cookie.status_code == 200

    wait_for(
        lambda: (monitor.status(ALIAS).replay_lsn or 0) >= parse_lsn(token),  # type: ignore[operator]
        what="the replica replaying past the token",
    )
    with statements("default", ALIAS) as counted:
        after = APIClient().get(
            f"/api/v1/products/{product_id}", headers={READ_AFTER_HEADER: token}
        )
    assert after.status_code == 200
    assert after.json()["name"] == "Fresh"
    assert counted == {"default": 0, ALIAS: 1}
    assert READ_AFTER_HEADER not in after


def test_every_query_inside_atomic_hits_the_primary(replica):
    Product.objects.create(sku="ATOMIC-1", name="Kept", price=Decimal("2.00"), stock=3)
    replicated(ALIAS, "replication of the row")
    with routing_scope(), statements("default", ALIAS) as counted:
        assert Product.objects.filter(sku="ATOMIC-1").count() == 1
    assert counted == {"default": 0, ALIAS: 1}

    with routing_scope(), statements("default", ALIAS) as counted, transaction.atomic():
        assert Product.objects.filter(sku="ATOMIC-1").count() == 1
        assert list(Product.objects.values_list("name", flat=True)) == ["Kept"]
        assert Product.objects.get(sku="ATOMIC-1").stock == 3
        with transaction.atomic():
            assert Product.objects.exists()
    assert counted == {"default": 4 + 2, ALIAS: 0}  # 4 reads, 1 savepoint pair


def test_reads_outside_any_scope_and_after_a_write_stay_on_the_primary(replica):
    router = ReplicaRouter()
    assert router.db_for_read(Product) == "default"
    with routing_scope() as state:
        assert router.db_for_read(Product) == ALIAS
        assert router.db_for_write(Product) == "default"
        assert router.db_for_read(Product) == "default"
        assert state.wrote is True
    assert format_lsn(parse_lsn("16/B374D848") or 0) == "16/B374D848"
