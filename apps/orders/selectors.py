"""Reads of the catalogue and of orders."""

from __future__ import annotations

import time

from django.db.models import Prefetch, QuerySet

from apps.core.http.errors import NotFound
from apps.orders.models import Order, OrderLine, Product
from apps.orders.sharding.ddl import ID_PARTITION_BITS, ID_SEQUENCE_BITS, id_at_ms
from apps.orders.sharding.layout import sharded
from apps.orders.sharding.lookup import owner_of_order

# How far ahead of the coordinator's a shard's clock may run.
CLOCK_SLACK_MS = 60_000
# The first window of an all-orders page, in milliseconds of creation time.
FIRST_WINDOW_MS = 60_000


def product_list() -> QuerySet[Product]:
    """Return every product, for the catalogue."""
    return Product.objects.all()


def product_get(*, product_id: int) -> Product:
    """Return the product with this id, or raise NotFound."""
    product = Product.objects.filter(pk=product_id).first()
    if product is None:
        raise NotFound("Product not found.")
    return product


def order_list(*, owner_id: int) -> QuerySet[Order]:
    """Return the owner's orders, each with its lines in ``line_list`` (id order).

    One query for the orders and one for their lines; both name the owner, so with
    sharding each reads the owner's one partition on one shard.
    """
    lines = Prefetch(
        "lines",
        queryset=OrderLine.objects.filter(owner_id=owner_id).order_by("id"),
        to_attr="line_list",
    )
    return Order.objects.filter(owner_id=owner_id).prefetch_related(lines)


def order_with_id(*, order_id: int) -> QuerySet[Order]:
    """Return a queryset of the order with this id, whoever owns it.

    With sharding the id names the order's partition: its owner is read there (one
    shard) and the queryset filters on it, so every query made from it prunes to that
    one shard instead of asking all of them.
    """
    orders = Order.objects.filter(pk=order_id)
    if sharded():
        owner = owner_of_order(order_id)
        orders = orders.filter(owner_id=owner) if owner is not None else orders.none()
    return orders


def order_get(*, owner_id: int, order_id: int) -> Order:
    """Return the owner's order; another owner's order is NotFound, as if it did not exist."""
    order = order_list(owner_id=owner_id).filter(pk=order_id).first()
    if order is None:
        raise NotFound("Order not found.")
    return order


def order_page_all(*, before_id: int | None = None, size: int = 50) -> list[Order]:
    """Return up to ``size`` orders of every owner with ids below ``before_id``, newest first."""
    return order_page(Order.objects.all(), before_id=before_id, size=size)


def order_page(
    orders: QuerySet[Order], *, before_id: int | None = None, size: int = 50
) -> list[Order]:
    """Return up to ``size`` of ``orders`` with ids below ``before_id``, newest first.

    Keyset pagination: the next page starts below the last id of this one, so no page
    scans the rows of the pages before it (no OFFSET). With sharding, ids lead with
    their creation millisecond, so a page is read as a window of ids just below the
    cursor, without ORDER BY: the coordinator then scans every partition at once (one
    async foreign scan each) instead of merging them one after the other; a window
    with too few rows is doubled until it has enough or reaches the first id.
    """
    if not sharded():
        newest_first = orders.order_by("-id")
        if before_id is not None:
            newest_first = newest_first.filter(id__lt=before_id)
        return list(newest_first[:size])
    unordered = orders.order_by()
    # The first page starts a little after now: a shard's clock may run ahead.
    now_ms = int(time.time() * 1000) + CLOCK_SLACK_MS
    below = before_id if before_id is not None else id_at_ms(now_ms)
    width = FIRST_WINDOW_MS << (ID_PARTITION_BITS + ID_SEQUENCE_BITS)
    while True:
        low = max(below - width, 0)
        found = list(unordered.filter(id__lt=below, id__gte=low))
        if len(found) >= size or low == 0:
            found.sort(key=lambda order: order.pk, reverse=True)
            return found[:size]
        width *= 2
