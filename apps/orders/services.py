"""Writes to orders."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from decimal import Decimal

from django.db import transaction

from apps.core.events.outbox import outbox_write
from apps.core.http.errors import InvalidInput
from apps.observability.metrics import record_order
from apps.orders.events import ORDER_CREATED
from apps.orders.models import Order, OrderLine, Product

MAX_ORDER_LINES = 1000
MAX_LINE_QUANTITY = 10_000
# The largest total ``Order.total`` (14 digits, 2 decimal places) can store.
MAX_ORDER_TOTAL = Decimal("999999999999.99")


@dataclass(frozen=True)
class OrderItem:
    """One requested product and quantity."""

    product_id: int
    quantity: int


def order_create(*, owner_id: int, items: Sequence[OrderItem], idempotency_key: str) -> Order:
    """Place a pending order, pricing every line from the catalogue, never from the client.

    Stock is not touched here: reserving it is the job of the order's event consumers.
    The order comes back with its ``line_list`` set.
    """
    _validate_items(items)
    wanted = {item.product_id for item in items}
    products = Product.objects.in_bulk(wanted)
    missing = sorted(wanted - products.keys())
    if missing:
        listed = ", ".join(str(pk) for pk in missing)
        raise InvalidInput(errors={"items": [f"Unknown product id(s): {listed}."]})

    lines = [
        OrderLine(
            product_id=item.product_id,
            quantity=item.quantity,
            unit_price=products[item.product_id].price,
        )
        for item in items
    ]
    total = sum((line.unit_price * line.quantity for line in lines), Decimal("0.00"))
    if total > MAX_ORDER_TOTAL:
        raise InvalidInput(errors={"items": [f"An order total cannot exceed {MAX_ORDER_TOTAL}."]})
    # No savepoint when a caller's transaction (the idempotency claim) is already open.
    with transaction.atomic(savepoint=False):
        order = Order.objects.create(
            owner_id=owner_id, total=total, idempotency_key=idempotency_key
        )
        for line in lines:
            line.order = order
        OrderLine.objects.bulk_create(lines)
        # The lines just written, as the selectors' prefetch would read them back.
        order.line_list = lines
        # Committed with the order or not at all; published once the transaction commits.
        outbox_write(event_type=ORDER_CREATED, payload={"order_id": order.pk})
        # Counted on commit: a rolled-back order was never placed.
        transaction.on_commit(lambda: record_order("placed"))
    return order


def _validate_items(items: Sequence[OrderItem]) -> None:
    if not items:
        raise InvalidInput(errors={"items": ["An order needs at least one item."]})
    if len(items) > MAX_ORDER_LINES:
        raise InvalidInput(errors={"items": [f"An order has at most {MAX_ORDER_LINES} items."]})
    seen: set[int] = set()
    for item in items:
        if not 1 <= item.quantity <= MAX_LINE_QUANTITY:
            raise InvalidInput(
                errors={"items": [f"Quantity must be between 1 and {MAX_LINE_QUANTITY}."]}
            )
        if item.product_id in seen:
            raise InvalidInput(
                errors={"items": [f"Product {item.product_id} appears more than once."]}
            )
        seen.add(item.product_id)
