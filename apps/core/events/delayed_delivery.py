"""Native delayed delivery (countdown retries on quorum queues), set up once per cluster.

A retry with a countdown on quorum queues goes through RabbitMQ: Celery publishes it to
the ``celery_delayed_*`` exchanges, whose queues hold it for the delay and then route it
back to its own (topic) exchange. Celery's own consumer step declares that topology
through every URL of CELERY_BROKER_URL in turn, retrying a URL that refuses for about
9 s before the next (celery 5.7), and does it again on every reconnect. With the URLs
of one cluster's nodes, a dead node then stalls each reconnect of every worker ~15 s,
right after a failover, when the queues need consumers most. The nodes of a cluster
share exchanges, queues and bindings, so one declaration through the failover
connection (the first node that answers) is enough; this step replaces Celery's.
"""

from __future__ import annotations

import logging
from typing import Any

from celery import bootsteps
from celery.utils.quorum_queues import detect_quorum_queues
from kombu.common import Broadcast
from kombu.transport.native_delayed_delivery import (
    bind_queue_to_native_delayed_delivery_exchange,
    declare_native_delayed_delivery_exchanges_and_queues,
)

from apps.core.events.brokers import failover_retries

logger = logging.getLogger(__name__)

CELERY_STEP = "celery.worker.consumer.delayed_delivery:DelayedDelivery"
CLUSTER_STEP = "apps.core.events.delayed_delivery:ClusterDelayedDelivery"


class ClusterDelayedDelivery(bootsteps.StartStopStep):
    """Declare the delayed-delivery topology and bind the task queues to it, once."""

    requires = ("celery.worker.consumer.tasks:Tasks",)

    def include_if(self, c: Any) -> bool:
        """Run only when a task queue is a quorum queue, as Celery's step does."""
        driver_type = c.app.connection_for_write().transport.driver_type
        included: bool = detect_quorum_queues(c.app, driver_type)[0]
        return included

    def start(self, c: Any) -> None:
        """Declare through the first node that answers; log (not raise) when none does.

        The topology is durable: a cluster that was set up once keeps it, so a worker
        starting while every node is down still finds it once one is back.
        """
        app = c.app
        queue_type: str = app.conf.broker_native_delayed_delivery_queue_type
        with app.connection_for_write() as conn:
            try:
                conn.ensure_connection(max_retries=failover_retries(app.conf.broker_write_url))
                declare_native_delayed_delivery_exchanges_and_queues(conn, queue_type)
                for queue in app.amqp.queues.values():
                    if not isinstance(queue, Broadcast):
                        bind_queue_to_native_delayed_delivery_exchange(conn, queue)
            except (*conn.connection_errors, *conn.channel_errors, OSError) as exc:
                logger.warning("delayed delivery: setting up the topology failed: %s", exc)
