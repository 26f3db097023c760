"""Time order placement and own-orders reads in this process's database setup; print JSON.

Run inside ``manage.py shell`` by the sharding section, once against one PostgreSQL and
once against a coordinator with shards. Events stay unsent (the outbox breaker held
open): the figure is the placement transaction, not the consumers after it.
"""

from __future__ import annotations

import json
import time

from apps.core.events.outbox import outbox_breaker
from apps.orders.models import Product
from apps.orders.selectors import order_list
from apps.orders.services import OrderItem, order_create
from apps.users.models import User

OWNERS = 20


def main(rounds: int) -> None:
    """Place ``rounds`` orders and read ``rounds`` own-orders pages; print seconds per op."""
    product = Product.objects.create(sku=f"bench-{time.time_ns()}", name="b", price=1, stock=10**9)
    owners = [
        User.objects.create_user(username=f"bench{time.time_ns()}-{n}", password=None).pk
        for n in range(OWNERS)
    ]
    breaker = outbox_breaker()
    items = [OrderItem(product_id=product.pk, quantity=1)]
    breaker.failed()
    started = time.perf_counter()
    for n in range(rounds):
        if n % 100 == 0:
            breaker.failed()
        order_create(owner_id=owners[n % OWNERS], items=items, idempotency_key=f"b{n}")
    place = (time.perf_counter() - started) / rounds
    started = time.perf_counter()
    for n in range(rounds):
        list(order_list(owner_id=owners[n % OWNERS]).order_by("-id")[:20])
    read = (time.perf_counter() - started) / rounds
    print(json.dumps({"place": place, "read": read}))
