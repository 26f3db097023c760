"""Code the sharded tests run inside ``manage.py shell`` (sharded settings); prints JSON."""

from __future__ import annotations

import json
from typing import Any

import psycopg
from django.contrib import admin
from django.contrib.auth import get_user_model
from django.db import connection
from django.test import Client
from django.test.utils import CaptureQueriesContext, setup_test_environment

from apps.core.db.remote import is_remote_server_failure
from apps.core.events.models import OutboxEvent, ProcessedEvent
from apps.core.events.outbox import outbox_breaker
from apps.orders.demo_data import demo_data_seed
from apps.orders.events import order_reserve_inventory
from apps.orders.models import Order, OrderLine, Product
from apps.orders.selectors import order_list, order_page_all, order_with_id
from apps.orders.services import OrderItem, order_create


def _plan(sql: str, params: Any = None) -> list[str]:
    with connection.cursor() as cursor:
        cursor.execute(f"EXPLAIN {sql}", params)  # noqa: S608 -- the ORM's own SQL
        return [row[0] for row in cursor.fetchall()]


def explain_own_orders(owner_id: int) -> None:
    """Print the plans of the own-orders list's two queries (orders, then their lines)."""
    orders = order_list(owner_id=owner_id).order_by("-id")[:20]
    lines = OrderLine.objects.filter(owner_id=owner_id, order_id__in=[1, 2]).order_by("id")
    print(
        json.dumps({"orders": orders.explain().splitlines(), "lines": lines.explain().splitlines()})
    )


def explain_all_orders(size: int) -> None:
    """Print the ids of two all-orders pages, and the plan of every query they ran."""
    with CaptureQueriesContext(connection) as captured:
        first = order_page_all(size=size)
        second = order_page_all(before_id=first[-1].pk, size=size)
    plans = [_plan(query["sql"]) for query in captured.captured_queries]
    ids = [order.pk for order in first + second]
    print(json.dumps({"ids": ids, "plans": plans}))


def walk_admin_order_list(per_page: int) -> None:
    """Seed orders, then follow the admin's Older links to the end; print ids, SQL and plans."""
    setup_test_environment()  # response.context, as in a test
    seed = demo_data_seed(users=6, products=3, orders=4 * per_page + 3)
    staff, _ = get_user_model().objects.get_or_create(
        username="shard-admin", defaults={"is_staff": True, "is_superuser": True}
    )
    admin.site.get_model_admin(Order).list_per_page = per_page  # type: ignore[misc]  # this process only
    client = Client()
    client.force_login(staff)
    ids: list[int] = []
    sql: list[str] = []
    url: str | None = "/admin/orders/order/"
    while url is not None:
        with CaptureQueriesContext(connection) as captured:
            response = client.get(url)
        assert response.status_code == 200, response.status_code
        changelist = response.context["cl"]
        ids += [order.pk for order in changelist.result_list]
        sql += [query["sql"] for query in captured.captured_queries]
        older = changelist.older_query_string()
        url = f"/admin/orders/order/{older}" if older else None
    order_sql = [query for query in sql if '"orders_order"' in query]
    print(
        json.dumps(
            {
                "seeded": seed.orders,
                "ids": ids,
                "sql": order_sql,
                "plans": [_plan(query) for query in order_sql if "WHERE" in query],
            }
        )
    )


KILL_ON_CONFIRM = """
CREATE OR REPLACE FUNCTION public.test_die() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN PERFORM pg_terminate_backend(pg_backend_pid()); PERFORM pg_sleep(5); RETURN NEW; END $$;
CREATE OR REPLACE TRIGGER test_die BEFORE UPDATE ON orders_order FOR EACH ROW
WHEN (NEW.status = 'confirmed') EXECUTE FUNCTION public.test_die();
"""


def reserve_through_a_dying_shard(owner_id: int, product_id: int, shard_url: str) -> None:
    """Place an order, then reserve it while its shard dies mid-way, then again; print states.

    The shard's session is terminated from inside the reservation's UPDATE of the
    order, after the coordinator already took the stock in the same transaction.
    """
    breaker = outbox_breaker()
    breaker.failed()
    order = order_create(
        owner_id=owner_id,
        items=[OrderItem(product_id=product_id, quantity=3)],
        idempotency_key="dying",
    )
    event = OutboxEvent.objects.get(shard_key=owner_id, payload__order_id=order.pk)

    def snapshot() -> dict[str, Any]:
        return {
            "stock": _stock(product_id),
            "status": _status(order.pk),
            "marks": ProcessedEvent.objects.filter(event_id=event.pk).count(),
            "confirmed_events": OutboxEvent.objects.filter(
                shard_key=owner_id, event_type="order.confirmed"
            ).count(),
        }

    observed: dict[str, Any] = {"stock_before": _stock(product_id)}
    with psycopg.connect(shard_url, autocommit=True) as shard:
        shard.execute(KILL_ON_CONFIRM)
    try:
        order_reserve_inventory(event_id=str(event.pk), order_id=order.pk)
    except Exception as exc:  # noqa: BLE001 -- reported to the test
        observed["failure_is_remote"] = is_remote_server_failure(exc)
    finally:
        with psycopg.connect(shard_url, autocommit=True) as shard:
            shard.execute("DROP TRIGGER test_die ON orders_order")
    observed["after_failure"] = snapshot()
    order_reserve_inventory(event_id=str(event.pk), order_id=order.pk)
    # A redelivery of the same event changes nothing.
    order_reserve_inventory(event_id=str(event.pk), order_id=order.pk)
    observed["after_retry"] = snapshot()
    print(json.dumps(observed))


def _stock(product_id: int) -> int:
    return int(Product.objects.values_list("stock", flat=True).get(pk=product_id))


def _status(order_id: int) -> str:
    return str(order_with_id(order_id=order_id).values_list("status", flat=True).get())


def seed_unpublished(users: int, products: int, orders: int) -> None:
    """Place demo orders in bulk, leaving their events unsent (the breaker held open).

    Their consumers would reserve stock order by order; placement is what is tested.
    """
    breaker = outbox_breaker()
    breaker.failed()
    counts = demo_data_seed(
        users=users, products=products, orders=orders, progress=lambda _: breaker.failed()
    )
    print(json.dumps({"orders": counts.orders}))
