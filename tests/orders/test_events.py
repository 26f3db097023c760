"""Order event consumers in-process: stock never oversold, each effect applied once."""

from __future__ import annotations

import inspect
import uuid
from concurrent.futures import ThreadPoolExecutor

import pytest
from celery import current_app
from django.core import mail
from django.db import connection

from apps.core.events.models import OutboxEvent, ProcessedEvent
from apps.core.events.routing import consumer_kwargs, events
from apps.orders.events import (
    ORDER_EVENTS,
    order_notify_warehouse,
    order_reserve_inventory,
    order_send_confirmation_email,
)
from apps.orders.models import Order, OrderLine, Product
from tests.factories import UserFactory


def _order(product: Product, quantity: int, owner=None) -> Order:
    owner = owner or UserFactory()
    order = Order.objects.create(owner=owner, total=0, idempotency_key=str(uuid.uuid4()))
    OrderLine.objects.create(order=order, product=product, quantity=quantity, unit_price=1)
    return order


CONSUMERS = [
    (event_type, consumer) for event_type in ORDER_EVENTS for consumer in event_type.consumers
]


@pytest.mark.parametrize(("event_type", "consumer"), CONSUMERS, ids=[c.task for _, c in CONSUMERS])
def test_consumer_task_takes_exactly_what_the_relay_sends(event_type, consumer):
    sent = consumer_kwargs(uuid.uuid4(), dict.fromkeys(event_type.fields, 1))
    parameters = inspect.signature(current_app.tasks[consumer.task].run).parameters

    assert sorted(parameters) == sorted(sent)
    assert {p.kind for p in parameters.values()} <= {
        inspect.Parameter.POSITIONAL_OR_KEYWORD,
        inspect.Parameter.KEYWORD_ONLY,
    }


@pytest.mark.parametrize(("event_type", "consumer"), CONSUMERS, ids=[c.task for _, c in CONSUMERS])
def test_consumer_runs_on_a_declared_queue(event_type, consumer, settings):
    declared = {queue.name for queue in current_app.conf.task_queues}

    assert f"{settings.EVENTS_QUEUE_PREFIX}.{consumer.queue}" in declared


def test_order_events_are_registered_at_start():
    assert [events.get(event_type.name) for event_type in ORDER_EVENTS] == list(ORDER_EVENTS)


@pytest.mark.django_db
def test_reserve_inventory_confirms_and_takes_every_line_from_stock():
    a = Product.objects.create(sku="A", name="A", price=1, stock=5)
    b = Product.objects.create(sku="B", name="B", price=1, stock=2)
    order = _order(a, 3)
    OrderLine.objects.create(order=order, product=b, quantity=2, unit_price=1)

    result = order_reserve_inventory(event_id=str(uuid.uuid4()), order_id=order.pk)

    assert result is not None
    assert result.status == Order.Status.CONFIRMED
    assert list(Product.objects.order_by("sku").values_list("stock", flat=True)) == [2, 0]
    assert OutboxEvent.objects.get().event_type == "order.confirmed"


@pytest.mark.django_db
def test_short_line_rejects_the_order_and_gives_back_the_lines_before_it():
    a = Product.objects.create(sku="A", name="A", price=1, stock=5)
    b = Product.objects.create(sku="B", name="B", price=1, stock=1)
    order = _order(a, 3)
    OrderLine.objects.create(order=order, product=b, quantity=2, unit_price=1)

    order_reserve_inventory(event_id=str(uuid.uuid4()), order_id=order.pk)

    order.refresh_from_db()
    assert order.status == Order.Status.REJECTED
    assert order.status_reason == f"Insufficient stock for product {b.pk}."
    assert list(Product.objects.order_by("sku").values_list("stock", flat=True)) == [5, 1]
    assert not OutboxEvent.objects.exists()


@pytest.mark.django_db
def test_redelivered_event_does_not_take_stock_twice():
    product = Product.objects.create(sku="A", name="A", price=1, stock=5)
    order = _order(product, 2)
    event_id = str(uuid.uuid4())

    order_reserve_inventory(event_id=event_id, order_id=order.pk)
    Order.objects.filter(pk=order.pk).update(status=Order.Status.PENDING)
    second = order_reserve_inventory(event_id=event_id, order_id=order.pk)

    assert second is None
    product.refresh_from_db()
    assert product.stock == 3
    assert ProcessedEvent.objects.count() == 1


@pytest.mark.django_db(transaction=True)
def test_fifty_concurrent_reservations_for_ten_units_never_oversell():
    product = Product.objects.create(sku="A", name="A", price=1, stock=10)
    owner = UserFactory()
    orders = [_order(product, 1, owner) for _ in range(50)]

    def reserve(order: Order) -> None:
        try:
            order_reserve_inventory(event_id=str(uuid.uuid4()), order_id=order.pk)
        finally:
            connection.close()

    with ThreadPoolExecutor(max_workers=10) as pool:
        list(pool.map(reserve, orders))

    statuses = list(Order.objects.values_list("status", flat=True))
    assert statuses.count(Order.Status.CONFIRMED) == 10
    assert statuses.count(Order.Status.REJECTED) == 40
    product.refresh_from_db()
    assert product.stock == 0


@pytest.mark.django_db
def test_confirmation_email_is_sent_once_per_confirmed_order():
    product = Product.objects.create(sku="A", name="A", price=1, stock=5)
    order = _order(product, 1, UserFactory(email="ada@example.com"))
    Order.objects.filter(pk=order.pk).update(status=Order.Status.CONFIRMED)
    event_id = str(uuid.uuid4())

    assert order_send_confirmation_email(event_id=event_id, order_id=order.pk) is True
    assert order_send_confirmation_email(event_id=event_id, order_id=order.pk) is False

    assert len(mail.outbox) == 1
    assert mail.outbox[0].to == ["ada@example.com"]
    assert mail.outbox[0].subject == f"Order {order.pk} confirmed"


@pytest.mark.django_db
def test_no_email_for_an_order_that_is_not_confirmed():
    product = Product.objects.create(sku="A", name="A", price=1, stock=5)
    order = _order(product, 1)

    assert order_send_confirmation_email(event_id=str(uuid.uuid4()), order_id=order.pk) is False
    assert mail.outbox == []


@pytest.mark.django_db
def test_warehouse_is_not_called_when_no_url_is_configured(settings):
    settings.WAREHOUSE_WEBHOOK_URL = ""
    product = Product.objects.create(sku="A", name="A", price=1, stock=5)

    sent = order_notify_warehouse(event_id=str(uuid.uuid4()), order_id=_order(product, 1).pk)

    assert sent is False
    assert not ProcessedEvent.objects.exists()


@pytest.mark.django_db(transaction=True)
def test_without_a_broker_the_order_is_confirmed_in_process(eager_tasks, auth_client, user):
    product = Product.objects.create(sku="EAGER", name="E", price="3.00", stock=1)

    first = auth_client.post(
        "/api/v1/orders",
        {"items": [{"product_id": product.pk, "quantity": 1}]},
        format="json",
        HTTP_IDEMPOTENCY_KEY="eager-1",
    )
    second = auth_client.post(
        "/api/v1/orders",
        {"items": [{"product_id": product.pk, "quantity": 1}]},
        format="json",
        HTTP_IDEMPOTENCY_KEY="eager-2",
    )

    assert first.status_code == second.status_code == 201
    assert first.json()["status"] == "pending"
    assert Order.objects.get(pk=first.json()["id"]).status == Order.Status.CONFIRMED
    rejected = Order.objects.get(pk=second.json()["id"])
    assert rejected.status == Order.Status.REJECTED
    assert len(mail.outbox) == 1
    assert OutboxEvent.objects.filter(sent_at__isnull=True).count() == 0
