"""Routing state is per request: nothing leaks across requests, threads or failures."""

from __future__ import annotations

import threading
from collections import Counter
from collections.abc import Iterator
from decimal import Decimal
from functools import partial
from typing import Any, cast

import pytest
from django.db import connections
from django.db.models import F
from django.http import HttpRequest, JsonResponse
from django.test import Client
from django.urls import path
from django.utils import timezone

from apps.core.db.health import monitor
from apps.core.db.lsn import format_lsn, parse_lsn
from apps.core.db.middleware import READ_AFTER_HEADER
from apps.core.db.router import ReplicaRouter
from apps.core.db.state import bookkeeping_write, current_state, routing_scope
from apps.orders.models import Product
from apps.users.models import User
from tests.core.db.live import live_replica, mirrored_alias, primary_lsn, replica_urls, wait_for
from tests.factories import UserFactory

pytestmark = pytest.mark.django_db(
    transaction=True, databases=["default", "replica_1", "replica_2"]
)

THREADS = 20
REQUESTS_PER_THREAD = 10
seen: list[dict[str, Any]] = []
seen_lock = threading.Lock()


class Injected(Exception):
    """The failure some requests raise on purpose."""


def inspect_state(request: HttpRequest, n: int) -> JsonResponse:
    state = current_state()
    assert state is not None
    record: dict[str, Any] = {
        "n": n,
        "fresh": (state.wrote, state.pinned_primary, state.replica) == (False, False, None),
        "read_after": state.read_after,
        "sent": parse_lsn(request.headers.get(READ_AFTER_HEADER)),
    }
    product_id = int(request.GET["product"])
    Product.objects.filter(pk=product_id).first()
    first = state.replica
    Product.objects.filter(pk=product_id).exists()
    record["replicas"] = (first, state.replica)
    if n % 5 == 0:
        Product.objects.filter(pk=product_id).update(stock=F("stock") + 1)
    with seen_lock:
        seen.append(record)
    if n % 4 == 0:
        raise Injected(f"request {n}")
    return JsonResponse({"n": n})


urlpatterns = [path("test/state/<int:n>", inspect_state)]


@pytest.fixture(scope="module", autouse=True)
def _replica_2_alias() -> Iterator[str]:
    with mirrored_alias("replica_2") as alias:
        yield alias


@pytest.fixture
def two_replicas(settings) -> Iterator[list[str]]:
    settings.DATABASE_REPLICA_MAX_LAG_SECONDS = 3600
    url = replica_urls()[0]
    with live_replica("replica_1", url, weight=1), live_replica("replica_2", url, weight=3):
        caught_up = primary_lsn()
        for alias in ("replica_1", "replica_2"):
            wait_for(partial(monitor.usable, alias, caught_up), what=f"{alias} caught up")
        yield ["replica_1", "replica_2"]


@pytest.mark.urls(__name__)
def test_200_concurrent_requests_with_injected_failures_leak_no_routing_state(two_replicas):
    product = Product.objects.create(sku="STATE-1", name="S", price=Decimal(1), stock=0)
    seen.clear()
    statuses: dict[int, int] = {}
    leaks: list[str] = []

    def client_thread(number: int) -> None:
        client = Client(raise_request_exception=False)
        token: str | None = None
        try:
            for i in range(REQUESTS_PER_THREAD):
                n = number * REQUESTS_PER_THREAD + i + 1
                headers = {READ_AFTER_HEADER: token} if token else {}
                response = client.get(f"/test/state/{n}?product={product.pk}", headers=headers)
                statuses[n] = response.status_code
                token = response.headers.get(READ_AFTER_HEADER, token)
                if current_state() is not None:
                    leaks.append(f"state left in thread {number} after request {n}")
        finally:
            connections.close_all()

    threads = [threading.Thread(target=client_thread, args=(t,)) for t in range(THREADS)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(60)

    total = THREADS * REQUESTS_PER_THREAD
    assert statuses == {n: 500 if n % 4 == 0 else 200 for n in range(1, total + 1)}
    assert leaks == []
    assert current_state() is None
    assert len(seen) == total
    assert [r["n"] for r in seen if not r["fresh"]] == []
    assert [r["n"] for r in seen if r["read_after"] != r["sent"]] == []
    # One replica per request: the second read used the replica the first one chose.
    assert [r["n"] for r in seen if r["replicas"][0] != r["replicas"][1]] == []
    assert {r["replicas"][0] for r in seen} <= {"replica_1", "replica_2", None}
    # Weights decide among the replicas a request may read. A request carrying a
    # position may read only those known to have replayed it; the two aliases share one
    # server but refresh their known positions at different moments, so such requests
    # lean on whichever refreshed last. Requests without a position show the weights.
    used = Counter(r["replicas"][0] for r in seen if r["sent"] is None)
    assert used["replica_2"] > used["replica_1"] > 0
    product.refresh_from_db()
    assert product.stock == total // 5


def test_weights_are_honoured_within_5_percent_over_10000_routing_decisions(two_replicas):
    router = ReplicaRouter()
    decisions: Counter[str] = Counter()
    for _ in range(10_000):
        with routing_scope():
            decisions[router.db_for_read(Product)] += 1

    assert set(decisions) == {"replica_1", "replica_2"}
    assert abs(decisions["replica_1"] - 2_500) <= 125
    assert abs(decisions["replica_2"] - 7_500) <= 375


def test_a_scope_is_reset_even_when_its_block_raises():
    def fail_inside_a_scope() -> None:
        with routing_scope(read_after=7) as state:
            state.wrote = True
            raise Injected("inside the scope")

    with pytest.raises(Injected):
        fail_inside_a_scope()

    assert current_state() is None
    assert format_lsn(7) == "0/7"


@pytest.mark.django_db
def test_a_bookkeeping_write_leaves_the_scope_reading_where_it_read():
    user = cast(User, UserFactory())
    with routing_scope() as state:
        with bookkeeping_write():
            User.objects.filter(pk=user.pk).update(last_active=timezone.now())
        assert (state.wrote, state.lsn_stale) == (False, False)
        User.objects.filter(pk=user.pk).update(display_name="written")
        assert (state.wrote, state.lsn_stale) == (True, True)
