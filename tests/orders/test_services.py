"""Order services: order_create (server-side pricing, its rules, its one transaction),
order_cancel (stock given back, its event) and product_stock_adjust (conditional)."""

from __future__ import annotations

import threading
import uuid
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from decimal import Decimal
from typing import cast
from unittest.mock import patch

import pytest
from django.db import DatabaseError, connection

from apps.core.events.models import OutboxEvent
from apps.core.http.errors import InvalidInput, NotFound
from apps.core.models import IdempotencyRecord
from apps.orders.events import ORDER_CANCELLED, order_reserve_inventory
from apps.orders.models import Order, OrderLine, Product
from apps.orders.services import (
    MAX_ORDER_LINES,
    OrderItem,
    order_cancel,
    order_create,
    product_stock_adjust,
)
from apps.users.models import User
from tests.factories import ProductFactory, UserFactory


def make_product(price: str, stock: int = 100) -> Product:
    return cast(Product, ProductFactory(price=Decimal(price), stock=stock))


def test_order_create_totals_prices_exactly_in_decimal(user):
    # 0.10 + 0.20 is 0.30000000000000004 in binary floating point.
    dime, two_dimes, widget = make_product("0.10"), make_product("0.20"), make_product("19.99")
    items = [
        OrderItem(product_id=dime.pk, quantity=1),
        OrderItem(product_id=two_dimes.pk, quantity=1),
        OrderItem(product_id=widget.pk, quantity=3),
    ]

    order = order_create(owner_id=user.pk, items=items, idempotency_key="k")

    assert order.total == Decimal("60.27")
    order.refresh_from_db()
    assert (
        order.owner_id,
        order.status,
        order.status_reason,
        order.total,
        order.idempotency_key,
    ) == (
        user.pk,
        Order.Status.PENDING,
        "",
        Decimal("60.27"),
        "k",
    )
    lines = OrderLine.objects.filter(order=order).order_by("id")
    assert [(line.product_id, line.quantity, line.unit_price, line.subtotal) for line in lines] == [
        (dime.pk, 1, Decimal("0.10"), Decimal("0.10")),
        (two_dimes.pk, 1, Decimal("0.20"), Decimal("0.20")),
        (widget.pk, 3, Decimal("19.99"), Decimal("59.97")),
    ]


def test_order_create_prices_lines_at_the_catalogue_price_of_the_moment(user):
    product = make_product("5.00")
    first = order_create(owner_id=user.pk, items=[OrderItem(product.pk, 2)], idempotency_key="a")
    Product.objects.filter(pk=product.pk).update(price=Decimal("7.25"))

    second = order_create(owner_id=user.pk, items=[OrderItem(product.pk, 2)], idempotency_key="b")

    assert (first.total, second.total) == (Decimal("10.00"), Decimal("14.50"))
    assert list(OrderLine.objects.order_by("id").values_list("unit_price", flat=True)) == [
        Decimal("5.00"),
        Decimal("7.25"),
    ]


def test_order_create_does_not_touch_stock(user):
    product = make_product("1.00", stock=2)

    order_create(owner_id=user.pk, items=[OrderItem(product.pk, 2)], idempotency_key="k")

    product.refresh_from_db()
    assert product.stock == 2


def test_order_create_names_every_unknown_product(user, product):
    items = [OrderItem(987655, 1), OrderItem(product.pk, 1), OrderItem(987654, 1)]

    with pytest.raises(InvalidInput) as raised:
        order_create(owner_id=user.pk, items=items, idempotency_key="k")

    assert raised.value.errors == {"items": ["Unknown product id(s): 987654, 987655."]}
    assert Order.objects.exists() is False


@pytest.mark.parametrize(
    ("items", "message"),
    [
        ([], "An order needs at least one item."),
        ([OrderItem(1, 1)] * (MAX_ORDER_LINES + 1), "An order has at most 1000 items."),
        ([OrderItem(1, 0)], "Quantity must be between 1 and 10000."),
        ([OrderItem(1, -1)], "Quantity must be between 1 and 10000."),
        ([OrderItem(1, 10_001)], "Quantity must be between 1 and 10000."),
        ([OrderItem(1, 1), OrderItem(2, 1), OrderItem(1, 3)], "Product 1 appears more than once."),
    ],
)
def test_order_create_refuses_items_that_break_a_rule(user, items, message):
    with pytest.raises(InvalidInput) as raised:
        order_create(owner_id=user.pk, items=items, idempotency_key="k")

    assert raised.value.errors == {"items": [message]}
    assert Order.objects.exists() is False


def test_order_create_refuses_a_total_the_order_cannot_store(user):
    dear = [make_product("99999999.99"), make_product("99999999.99")]

    with pytest.raises(InvalidInput) as raised:
        order_create(
            owner_id=user.pk, items=[OrderItem(p.pk, 10_000) for p in dear], idempotency_key="k"
        )

    assert raised.value.errors == {"items": ["An order total cannot exceed 999999999999.99."]}
    assert Order.objects.exists() is False


def test_order_create_accepts_the_largest_total_the_order_can_store(user):
    product = make_product("99999999.99")

    order = order_create(
        owner_id=user.pk, items=[OrderItem(product.pk, 10_000)], idempotency_key="k"
    )

    order.refresh_from_db()
    assert order.total == Decimal("999999999900.00")


@pytest.fixture
def line_insert_fails_for_quantity_seven(transactional_db: None) -> Iterator[None]:
    """Make PostgreSQL refuse any order line of quantity 7, after its order was inserted."""
    with connection.cursor() as cursor:
        cursor.execute(
            """
            CREATE FUNCTION test_refuse_line() RETURNS trigger LANGUAGE plpgsql AS $$
            BEGIN
                IF NEW.quantity = 7 THEN RAISE EXCEPTION 'line refused by test trigger'; END IF;
                RETURN NEW;
            END $$
            """
        )
        cursor.execute(
            "CREATE TRIGGER test_refuse_line BEFORE INSERT ON orders_orderline "
            "FOR EACH ROW EXECUTE FUNCTION test_refuse_line()"
        )
    yield
    with connection.cursor() as cursor:
        cursor.execute("DROP TRIGGER test_refuse_line ON orders_orderline")
        cursor.execute("DROP FUNCTION test_refuse_line()")


@pytest.mark.django_db(transaction=True)
@pytest.mark.usefixtures("line_insert_fails_for_quantity_seven")
def test_order_whose_line_fails_to_insert_leaves_no_order_behind():
    owner = cast(User, UserFactory())
    good, bad = make_product("1.00"), make_product("2.00")
    items = [OrderItem(good.pk, 1), OrderItem(bad.pk, 7)]

    with pytest.raises(DatabaseError, match="line refused by test trigger"):
        order_create(owner_id=owner.pk, items=items, idempotency_key="k")

    assert Order.objects.exists() is False
    assert OrderLine.objects.exists() is False
    # The same call without the refused line commits both rows: the trigger alone caused it.
    order = order_create(owner_id=owner.pk, items=[OrderItem(good.pk, 1)], idempotency_key="k")
    assert list(Order.objects.values_list("id", flat=True)) == [order.pk]


@pytest.mark.django_db(transaction=True)
def test_order_for_a_product_deleted_before_commit_is_a_409_and_writes_nothing(auth_client):
    product = cast(Product, ProductFactory())
    doomed = cast(Product, ProductFactory())
    original_bulk_create = OrderLine.objects.bulk_create

    def delete_product_then_insert(lines, *args, **kwargs):
        # Another connection deletes the product after it was priced, before commit.
        def delete() -> None:
            Product.objects.filter(pk=doomed.pk).delete()
            connection.close()

        worker = threading.Thread(target=delete)
        worker.start()
        worker.join()
        return original_bulk_create(lines, *args, **kwargs)

    body = {
        "items": [
            {"product_id": product.pk, "quantity": 1},
            {"product_id": doomed.pk, "quantity": 1},
        ]
    }
    with patch.object(OrderLine.objects, "bulk_create", delete_product_then_insert):
        response = auth_client.post(
            "/api/v1/orders", body, format="json", HTTP_IDEMPOTENCY_KEY="race-delete"
        )

    assert response.status_code == 409
    assert response.json() == {"detail": "The request conflicted with a concurrent change; retry."}
    assert Order.objects.count() == 0
    assert IdempotencyRecord.objects.count() == 0


def _placed(user: User, *quantities: tuple[Product, int]) -> Order:
    items = [OrderItem(product.pk, quantity) for product, quantity in quantities]
    return order_create(owner_id=user.pk, items=items, idempotency_key=f"k-{len(items)}")


def _cancel_events() -> list[dict[str, object]]:
    return [e.payload for e in OutboxEvent.objects.filter(event_type=ORDER_CANCELLED)]


@pytest.mark.django_db
def test_order_cancel_gives_a_confirmed_orders_stock_back_and_writes_its_event(user):
    a, b = make_product("1.00", stock=10), make_product("2.00", stock=4)
    order = _placed(user, (a, 3), (b, 4))
    order_reserve_inventory(event_id="00000000-0000-0000-0000-000000000001", order_id=order.pk)
    assert Product.objects.get(pk=b.pk).stock == 0

    cancelled = order_cancel(order_id=order.pk, reason="customer called")

    assert (cancelled.status, cancelled.status_reason) == ("cancelled", "customer called")
    stock = dict(Product.objects.filter(pk__in=[a.pk, b.pk]).values_list("pk", "stock"))
    assert stock == {a.pk: 10, b.pk: 4}
    assert _cancel_events() == [{"order_id": order.pk}]


@pytest.mark.django_db
def test_a_pending_order_cancelled_is_never_reserved_afterwards(user):
    product = make_product("1.00", stock=10)
    order = _placed(user, (product, 3))

    order_cancel(order_id=order.pk)
    order_reserve_inventory(event_id="00000000-0000-0000-0000-000000000002", order_id=order.pk)

    order.refresh_from_db()
    assert (order.status, order.status_reason) == ("cancelled", "Cancelled.")
    assert Product.objects.get(pk=product.pk).stock == 10
    assert _cancel_events() == [{"order_id": order.pk}]


@pytest.mark.django_db
@pytest.mark.parametrize("status", ["rejected", "cancelled"])
def test_order_cancel_refuses_an_order_that_is_not_pending_or_confirmed(user, status):
    product = make_product("1.00", stock=10)
    order = _placed(user, (product, 3))
    Order.objects.filter(pk=order.pk).update(status=status, status_reason="before")

    with pytest.raises(InvalidInput) as excinfo:
        order_cancel(order_id=order.pk)

    assert excinfo.value.detail == (
        f"Order {order.pk} is {status}; only pending or confirmed cancel."
    )
    order.refresh_from_db()
    assert (order.status, order.status_reason) == (status, "before")
    assert Product.objects.get(pk=product.pk).stock == 10
    assert _cancel_events() == []


@pytest.mark.django_db
def test_order_cancel_of_an_unknown_order_is_not_found():
    with pytest.raises(NotFound):
        order_cancel(order_id=987654)


@pytest.mark.django_db
@pytest.mark.parametrize(("by", "stock"), [(5, 15), (-10, 0), (0, 10)])
def test_product_stock_adjust_adds_or_removes_units(by, stock):
    product = make_product("1.00", stock=10)

    assert product_stock_adjust(product_id=product.pk, by=by) == stock
    assert Product.objects.get(pk=product.pk).stock == stock


@pytest.mark.django_db
def test_product_stock_adjust_refuses_to_remove_more_than_is_left():
    product = make_product("1.00", stock=10)

    with pytest.raises(InvalidInput) as excinfo:
        product_stock_adjust(product_id=product.pk, by=-11)

    assert excinfo.value.detail == f"Product {product.pk} has 10 in stock; cannot remove 11."
    assert Product.objects.get(pk=product.pk).stock == 10


@pytest.mark.django_db
def test_product_stock_adjust_keeps_a_reservation_made_since_the_page_was_read(user):
    product = make_product("1.00", stock=10)
    shown = Product.objects.get(pk=product.pk)
    order = _placed(user, (product, 4))
    order_reserve_inventory(event_id="00000000-0000-0000-0000-000000000003", order_id=order.pk)

    product_stock_adjust(product_id=shown.pk, by=5)

    assert Product.objects.get(pk=product.pk).stock == 11


@pytest.mark.django_db
def test_product_stock_adjust_of_an_unknown_product_is_not_found():
    with pytest.raises(NotFound):
        product_stock_adjust(product_id=987654, by=1)


@pytest.mark.django_db(transaction=True)
def test_cancels_racing_reservations_always_give_back_exactly_what_was_taken():
    a, b = make_product("1.00", stock=30), make_product("1.00", stock=30)
    owner = cast(User, UserFactory())
    orders = [
        order_create(
            owner_id=owner.pk,
            items=[OrderItem(a.pk, 2), OrderItem(b.pk, 1)],
            idempotency_key=f"race-{n}",
        )
        for n in range(20)
    ]

    def run(job: tuple[str, Order]) -> None:
        kind, order = job
        try:
            if kind == "reserve":
                order_reserve_inventory(event_id=str(uuid.uuid4()), order_id=order.pk)
            else:
                order_cancel(order_id=order.pk)
        finally:
            connection.close()

    jobs = [(kind, order) for order in orders for kind in ("reserve", "cancel")]
    with ThreadPoolExecutor(max_workers=8) as pool:
        list(pool.map(run, jobs))

    assert set(Order.objects.values_list("status", flat=True)) == {"cancelled"}
    stock = dict(Product.objects.filter(pk__in=[a.pk, b.pk]).values_list("pk", "stock"))
    assert stock == {a.pk: 30, b.pk: 30}
