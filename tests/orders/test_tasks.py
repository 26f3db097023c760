"""The order tasks: their names and queues, and the backoff between their retries."""

from __future__ import annotations

import pytest
from celery import current_app

from apps.core.events.consumers import backoff_delay
from apps.orders import tasks


@pytest.mark.parametrize(
    ("task", "name", "queue"),
    [
        (tasks.reserve_inventory, "orders.reserve_inventory", "orders"),
        (tasks.send_confirmation_email, "orders.send_confirmation_email", "orders"),
        (tasks.notify_warehouse, "orders.notify_warehouse", "webhooks"),
    ],
)
def test_order_task_is_registered_under_its_name_and_routed_to_its_queue(
    task, name, queue, settings
):
    assert (task.name, name in current_app.tasks) == (name, True)
    route = current_app.amqp.router.route({}, name)
    assert route["queue"].name == f"{settings.EVENTS_QUEUE_PREFIX}.{queue}"


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
