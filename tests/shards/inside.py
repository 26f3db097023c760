"""Code the sharded tests run inside ``manage.py shell`` (sharded settings); prints JSON."""

from __future__ import annotations

import json
from typing import Any

from django.db import connection
from django.test.utils import CaptureQueriesContext

from apps.core.db.remote import is_remote_server_failure
from apps.core.events.outbox import outbox_breaker
from apps.orders.demo_data import demo_data_seed
from apps.orders.events import order_reserve_inventory
from apps.orders.models import Order, OrderLine
from apps.orders.selectors import order_list, order_page_all


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
    """Print each query an all-orders page ran, with its plan, and the ids it returned."""
    with CaptureQueriesContext(connection) as captured:
        page = order_page_all(size=size)
    with connection.cursor() as cursor:
        sqls = [query["sql"] for query in captured.captured_queries]
        plans = []
        for sql in sqls:
            cursor.execute(f"EXPLAIN {sql}")  # noqa: S608 -- the SQL the selector ran
            plans.append([row[0] for row in cursor.fetchall()])
    print(json.dumps({"ids": [order.pk for order in page], "plans": plans}))


def reserve(event_id: str, order_id: int) -> None:
    """Run the reservation once; print the order's status after it, or the failure."""
    try:
        order_reserve_inventory(event_id=event_id, order_id=order_id)
    except Exception as exc:  # noqa: BLE001 -- reported to the test
        print(json.dumps({"failed": type(exc).__name__, "remote": is_remote_server_failure(exc)}))
        return
    status = Order.objects.filter(pk=order_id).values_list("status", flat=True).first()
    print(json.dumps({"status": status}))


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
