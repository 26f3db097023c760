"""Reads of the catalogue and of orders."""

from __future__ import annotations

from django.db.models import Prefetch, QuerySet

from apps.core.http.errors import NotFound
from apps.orders.models import Order, OrderLine, Product


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

    One query for the orders and one for their lines.
    """
    lines = Prefetch("lines", queryset=OrderLine.objects.order_by("id"), to_attr="line_list")
    return Order.objects.filter(owner_id=owner_id).prefetch_related(lines)


def order_get(*, owner_id: int, order_id: int) -> Order:
    """Return the owner's order; another owner's order is NotFound, as if it did not exist."""
    order = order_list(owner_id=owner_id).filter(pk=order_id).first()
    if order is None:
        raise NotFound("Order not found.")
    return order
