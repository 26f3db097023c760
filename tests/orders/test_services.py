"""order_create: server-side pricing, the rules it enforces, and its one transaction."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from decimal import Decimal
from typing import cast
from unittest.mock import patch

import pytest
from django.db import DatabaseError, connection

from apps.core.http.errors import InvalidInput
from apps.core.models import IdempotencyRecord
from apps.orders.models import Order, OrderLine, Product
from apps.orders.services import MAX_ORDER_LINES, OrderItem, order_create
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
