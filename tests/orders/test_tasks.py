"""The order tasks: names, reliability settings, one service each."""

from __future__ import annotations

import pytest
from celery import current_app

from apps.core.events.consumers import ReliableTask, backoff_delay
from apps.orders import tasks


@pytest.mark.parametrize(
    ("task", "name", "queue"),
    [
        (tasks.reserve_inventory, "orders.reserve_inventory", "orders"),
        (tasks.send_confirmation_email, "orders.send_confirmation_email", "orders"),
        (tasks.notify_warehouse, "orders.notify_warehouse", "webhooks"),
    ],
)
def test_order_task_is_named_routed_and_acked_late(task, name, queue, settings):
    assert task.name == name
    assert isinstance(task, ReliableTask)
    assert task.acks_late is True
    assert task.reject_on_worker_lost is True
    route = current_app.amqp.router.route({}, name)
    assert route["queue"].name == f"{settings.EVENTS_QUEUE_PREFIX}.{queue}"


def test_every_queue_is_a_quorum_queue_with_a_delivery_limit_and_dead_letter_exchange(settings):
    for queue in current_app.conf.task_queues:
        assert queue.queue_arguments == {
            "x-queue-type": "quorum",
            "x-delivery-limit": settings.EVENTS_MAX_DELIVERIES - 1,
            "x-dead-letter-exchange": f"{settings.EVENTS_QUEUE_PREFIX}.dlx",
        }
        assert queue.durable is True
    assert current_app.conf.worker_prefetch_multiplier == 1
    assert current_app.conf.broker_transport_options["confirm_publish"] is True


def test_backoff_delays_grow_exponentially_within_their_jitter(settings):
    settings.EVENTS_RETRY_BACKOFF_SECONDS = 2
    settings.EVENTS_RETRY_BACKOFF_MAX_SECONDS = 600

    for _ in range(200):
        delays = [backoff_delay(n) for n in range(5)]
        assert [2 <= delays[0] <= 3, 4 <= delays[1] <= 6, 8 <= delays[2] <= 12] == [True] * 3
        assert delays == sorted(delays)
        assert len(set(delays)) == 5


def test_backoff_delay_never_exceeds_the_cap(settings):
    settings.EVENTS_RETRY_BACKOFF_SECONDS = 2
    settings.EVENTS_RETRY_BACKOFF_MAX_SECONDS = 60

    assert {backoff_delay(n) for n in range(10, 20)} == {60}
