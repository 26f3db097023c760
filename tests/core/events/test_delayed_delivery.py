"""The worker's delayed-delivery step: one declaration through the first node that answers."""

from __future__ import annotations

import logging
import socket
from collections.abc import Iterator
from types import SimpleNamespace
from typing import Any

import pytest
from celery import current_app
from kombu import Connection

from apps.core.events.consumers import DeadLetteringConsumer
from apps.core.events.delayed_delivery import CELERY_STEP, CLUSTER_STEP, ClusterDelayedDelivery


def _dead_url() -> str:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    return f"amqp://guest:guest@127.0.0.1:{port}//"


@pytest.fixture
def first_node_dead() -> Iterator[str]:
    """Make this process's broker a 'cluster' whose first URL refuses; yield the live URL."""
    live = current_app.conf.broker_write_url
    previous = current_app.conf.get("broker_write_url")
    current_app.conf.update(broker_write_url=f"{_dead_url()};{live}")
    try:
        yield live
    finally:
        current_app.conf.update(broker_write_url=previous)


def test_the_worker_consumer_runs_the_cluster_step_instead_of_celerys():
    steps = DeadLetteringConsumer.Blueprint.default_steps

    assert CLUSTER_STEP in steps
    assert CELERY_STEP not in steps


def test_delayed_delivery_is_declared_through_the_next_url_when_the_first_is_dead(
    first_node_dead, caplog
):
    # The worker's Tasks step, which this one requires, has declared the task queues.
    with Connection(first_node_dead) as conn:
        for queue in current_app.amqp.queues.values():
            queue(conn.default_channel).declare()
    step = ClusterDelayedDelivery(SimpleNamespace())
    consumer = SimpleNamespace(app=current_app)
    assert step.include_if(consumer) is True

    with caplog.at_level(logging.WARNING):
        step.start(consumer)

    # Celery's own step warns of (and retries) the dead URL; this one goes on at once.
    # (A queue another test made on the fly by name has a direct exchange, which
    # Celery's delayed delivery warns of: not this step's business.)
    messages = [record.getMessage() for record in caplog.records]
    assert [m for m in messages if "is a direct exchange" not in m] == []
    with Connection(first_node_dead) as conn:
        channel: Any = conn.channel()
        # Passive: fails unless the topology exists on the live node.
        channel.exchange_declare("celery_delayed_delivery", "topic", passive=True)
        _, _, consumers = channel.queue_declare("celery_delayed_0", passive=True)
        assert consumers == 0
