"""Writes to orders."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from decimal import Decimal

from django.db import transaction
from django.db.models import F
from django.utils import timezone

from apps.core.db.sticking import act_for_user
from apps.core.events.outbox import outbox_write
from apps.core.http.errors import InvalidInput, NotFound
from apps.observability.metrics import record_order
from apps.orders.events import ORDER_CANCELLED, ORDER_CREATED
from apps.orders.models import Order, OrderLine, Product
from apps.orders.selectors import order_with_id

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
            owner_id=owner_id,
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
        outbox_write(event_type=ORDER_CREATED, payload={"order_id": order.pk}, shard_key=owner_id)
        # Counted on commit: a rolled-back order was never placed.
        transaction.on_commit(lambda: record_order("placed"))
    return order


CANCELLABLE = (Order.Status.PENDING, Order.Status.CONFIRMED)


def order_cancel(*, order_id: int, reason: str = "") -> Order:
    """Cancel a pending or confirmed order; a confirmed order's stock goes back.

    The order row is locked first, as ``order_reserve_inventory`` locks it, so a
    reservation and a cancellation of one order run one after the other: a pending
    order cancelled first is left alone by its reservation, and a reservation that
    confirmed first is undone here. The status moves by a conditional UPDATE from the
    status read under that lock. Writes ``order.cancelled`` to the outbox. Raise
    NotFound for no such order, InvalidInput for one that is rejected or cancelled.
    """
    with transaction.atomic():
        orders = order_with_id(order_id=order_id)
        order = orders.select_for_update().first()
        if order is None:
            raise NotFound(f"Order {order_id} not found.")
        was = order.status
        if was not in CANCELLABLE:
            raise InvalidInput(f"Order {order_id} is {was}; only pending or confirmed cancel.")
        # Its owner, polling the order from any client, then reads the new status.
        act_for_user(order.owner_id)
        orders.filter(status=was).update(
            status=Order.Status.CANCELLED,
            status_reason=reason or "Cancelled.",
            updated_at=timezone.now(),
        )
        if was == Order.Status.CONFIRMED:
            # Id order, as reservations take stock, so the two never wait in a cycle.
            lines = order.lines.filter(owner_id=order.owner_id).order_by("product_id")
            for product_id, quantity in lines.values_list("product_id", "quantity"):
                Product.objects.filter(pk=product_id).update(
                    stock=F("stock") + quantity, updated_at=timezone.now()
                )
        outbox_write(
            event_type=ORDER_CANCELLED, payload={"order_id": order_id}, shard_key=order.owner_id
        )
    # Read back by the pruned queryset: refresh_from_db() by id alone asks every shard.
    return orders.get()


def product_stock_adjust(*, product_id: int, by: int) -> int:
    """Add ``by`` units to a product's stock (remove them when negative); return the stock.

    One conditional UPDATE (``stock + by >= 0``), so it composes with reservations
    running at the same moment instead of overwriting them. Raise NotFound for no such
    product, InvalidInput when fewer than ``-by`` units are left. The app keeps no
    cached copy of a product (every catalogue read goes to the database), so there is
    nothing to flush; ``updated_at`` moves, for anything versioned by it.
    """
    with transaction.atomic():
        changed = Product.objects.filter(pk=product_id, stock__gte=-by).update(
            stock=F("stock") + by, updated_at=timezone.now()
        )
        stock = Product.objects.filter(pk=product_id).values_list("stock", flat=True).first()
        if stock is None:
            raise NotFound(f"Product {product_id} not found.")
        if not changed:
            raise InvalidInput(
                f"Product {product_id} has {stock} in stock; cannot remove {-by}.",
                errors={"stock": [f"Only {stock} in stock."]},
            )
    return stock


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
