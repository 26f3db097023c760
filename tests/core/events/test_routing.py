"""The event registry: consumers of each event type, their queues, the relay's call."""

from __future__ import annotations

import uuid

import pytest
from celery import current_app
from django.core.exceptions import ImproperlyConfigured

from apps.core.events.routing import Consumer, EventRegistry, EventType, consumer_kwargs


def test_registry_returns_each_type_and_the_queue_of_each_consumer():
    registry = EventRegistry()
    placed = EventType("thing.placed", fields=("thing_id",), consumers=(Consumer("a", "q1"),))
    shipped = EventType(
        "thing.shipped", fields=("thing_id",), consumers=(Consumer("a", "q1"), Consumer("b", "q2"))
    )

    registry.register(placed, shipped)
    registry.register(placed)

    assert (registry.get("thing.placed"), registry.get("thing.shipped")) == (placed, shipped)
    assert registry.get("thing.lost") is None
    assert [registry.queue_of(task) for task in ("a", "b", "c")] == ["q1", "q2", None]
    assert list(registry) == [placed, shipped]


def test_registry_refuses_a_type_declared_twice_differently():
    registry = EventRegistry()
    registry.register(EventType("thing.placed", fields=("thing_id",)))

    with pytest.raises(ImproperlyConfigured, match="'thing.placed' is declared twice"):
        registry.register(EventType("thing.placed", fields=("other_id",)))

    assert registry.get("thing.placed") == EventType("thing.placed", fields=("thing_id",))


def test_registry_refuses_one_task_on_two_queues():
    registry = EventRegistry()
    registry.register(EventType("thing.placed", fields=(), consumers=(Consumer("a", "q1"),)))

    with pytest.raises(ImproperlyConfigured, match="'a' is routed to 'q1' and 'q2'"):
        registry.register(EventType("thing.gone", fields=(), consumers=(Consumer("a", "q2"),)))

    assert (registry.queue_of("a"), registry.get("thing.gone")) == ("q1", None)


def test_consumers_are_called_with_the_event_id_and_the_payload_fields():
    event_id = uuid.uuid4()

    assert consumer_kwargs(event_id, {"order_id": 7}) == {"event_id": str(event_id), "order_id": 7}


def test_celery_routes_consumer_tasks_by_the_registry_and_others_to_the_default(settings):
    router = current_app.amqp.router

    assert router.route({}, "orders.notify_warehouse")["queue"].name == (
        f"{settings.EVENTS_QUEUE_PREFIX}.webhooks"
    )
    assert router.route({}, "core.outbox_sweep")["queue"].name == (
        f"{settings.EVENTS_QUEUE_PREFIX}.default"
    )
