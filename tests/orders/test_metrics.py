"""``orders_total{outcome}``: counted by the orders code, once per committed outcome."""

from __future__ import annotations

import uuid

import pytest
from django.db import transaction
from prometheus_client import REGISTRY

from apps.orders.events import order_reserve_inventory
from apps.orders.models import Order, Product
from apps.orders.services import OrderItem, order_create


def _count(outcome: str) -> float:
    return REGISTRY.get_sample_value("orders_total", {"outcome": outcome}) or 0.0


def _counts() -> dict[str, float]:
    return {outcome: _count(outcome) for outcome in ("placed", "confirmed", "rejected")}


@pytest.mark.django_db
def test_placing_an_order_counts_it_as_placed_once_committed(
    user, django_capture_on_commit_callbacks
):
    product = Product.objects.create(sku="M-5", name="Metered", price="1.00", stock=5)
    before = _counts()

    with django_capture_on_commit_callbacks(execute=True):
        order_create(owner_id=user.pk, items=[OrderItem(product.pk, 1)], idempotency_key="m-1")

    after = _counts()
    assert after["placed"] == before["placed"] + 1
    assert after["confirmed"] == before["confirmed"]
    assert after["rejected"] == before["rejected"]


@pytest.mark.django_db(transaction=True)
def test_rolled_back_order_is_not_counted(user):
    product = Product.objects.create(sku="M-5", name="Metered", price="1.00", stock=5)
    before = _count("placed")

    def place_then_fail() -> None:
        with transaction.atomic():
            order_create(owner_id=user.pk, items=[OrderItem(product.pk, 1)], idempotency_key="m-2")
            raise RuntimeError("roll back")

    with pytest.raises(RuntimeError, match="roll back"):
        place_then_fail()

    assert _count("placed") == before
    assert not Order.objects.exists()


@pytest.mark.django_db
def test_reservation_counts_confirmed_then_rejected_and_a_redelivery_counts_nothing(
    user, django_capture_on_commit_callbacks
):
    product = Product.objects.create(sku="M-1", name="Metered", price="1.00", stock=1)
    with django_capture_on_commit_callbacks(execute=True):
        first = order_create(
            owner_id=user.pk, items=[OrderItem(product.pk, 1)], idempotency_key="m-3"
        )
        second = order_create(
            owner_id=user.pk, items=[OrderItem(product.pk, 1)], idempotency_key="m-4"
        )
    before = _counts()
    event_ids = [str(uuid.uuid4()), str(uuid.uuid4())]

    with django_capture_on_commit_callbacks(execute=True):
        order_reserve_inventory(event_id=event_ids[0], order_id=first.pk)
    with django_capture_on_commit_callbacks(execute=True):
        order_reserve_inventory(event_id=event_ids[1], order_id=second.pk)
    with django_capture_on_commit_callbacks(execute=True):
        order_reserve_inventory(event_id=event_ids[0], order_id=first.pk)

    after = _counts()
    assert after["confirmed"] == before["confirmed"] + 1
    assert after["rejected"] == before["rejected"] + 1
    assert after["placed"] == before["placed"]
