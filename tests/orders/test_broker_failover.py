"""Orders on a 3-node RabbitMQ cluster while the node leading the orders queue is killed.

Everything is real: the session's cluster (tests/rabbitmq_cluster.py), a Celery worker
and celery beat on ``CELERY_BROKER_URL`` with the three URLs, this process's outbox
relay publishing to the same URLs, and PostgreSQL.
"""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Iterator
from pathlib import Path

import pytest
from celery import current_app

from apps.core.events.models import OutboxEvent, ProcessedEvent
from apps.core.events.outbox import outbox_relay_close
from apps.orders.events import NOTIFY_WAREHOUSE, RESERVE_INVENTORY, SEND_CONFIRMATION_EMAIL
from apps.orders.models import Order, Product
from deploy.local.rabbitmq_cluster import RabbitMQCluster
from tests.events_worker import (
    WarehouseServer,
    Worker,
    running_beat,
    running_worker,
    wait_for,
    worker_environment,
)
from tests.events_worker import (
    test_database_url as database_url_of_the_test_db,
)
from tests.orders.placing import place_order

pytestmark = pytest.mark.django_db(transaction=True)

ORDERS = 40
# The order placed right after the kill: half the orders are queued or running then.
KILL_AT = 20
BROKER_SETTINGS = ("broker_url", "broker_read_url", "broker_write_url")


@pytest.fixture
def cluster_broker(rabbitmq_cluster: RabbitMQCluster) -> Iterator[RabbitMQCluster]:
    """Point this process's Celery app (and so its outbox relay) at the whole cluster."""
    for node in rabbitmq_cluster.nodes:
        if not node.running:
            rabbitmq_cluster.start_node(node.name)
    previous = {key: current_app.conf.get(key) for key in BROKER_SETTINGS}
    outbox_relay_close()
    current_app.conf.update(dict.fromkeys(BROKER_SETTINGS, rabbitmq_cluster.urls()))
    try:
        yield rabbitmq_cluster
    finally:
        outbox_relay_close()
        current_app.conf.update(previous)


@pytest.fixture
def cluster_worker(
    transactional_db: None,
    cluster_broker: RabbitMQCluster,
    warehouse: WarehouseServer,
    tmp_path: Path,
) -> Iterator[Worker]:
    """Run a worker on the cluster's URLs; stopped before the test's tables are flushed."""
    env = {
        **worker_environment(database_url_of_the_test_db(), warehouse),
        "CELERY_BROKER_URL": cluster_broker.urls(),
    }
    home = tmp_path / "worker"
    home.mkdir()
    with running_worker(home, env) as worker:
        yield worker


def _place(client, product_id: int, key: str) -> int:
    return int(place_order(client, product_id, key)["id"])


def _emails_per_order(worker: Worker) -> Counter[int]:
    found: Counter[int] = Counter()
    for path in worker.email_dir.glob("*.log"):
        found.update(int(n) for n in re.findall(r"Order (\d+) confirmed", path.read_text()))
    return found


def _processed(consumer: str) -> int:
    return ProcessedEvent.objects.filter(consumer=consumer).count()


def test_orders_flowing_while_the_orders_queue_leader_is_killed_are_each_confirmed_once(
    cluster_broker, cluster_worker, warehouse, auth_client, user, settings, tmp_path
):
    cluster = cluster_broker
    queue = f"{settings.EVENTS_QUEUE_PREFIX}.orders"
    product = Product.objects.create(sku="HA-1", name="Widget", price="1.00", stock=1000)
    # Two webhook calls fail: they retry with a countdown, through the delayed-delivery
    # queues of the cluster.
    warehouse.reset(503, 503)
    # The worker declared its queues: replicated on every node, led by one of them.
    leader, replicas = cluster.queue_replicas(queue)
    assert replicas == ["hs1", "hs2", "hs3"]

    beat_env = {**cluster_worker.env, "OUTBOX_SWEEP_SECONDS": "1"}
    with running_beat(tmp_path / "beat", beat_env):
        ids = []
        for n in range(ORDERS):
            if n == KILL_AT:
                cluster.kill_node(leader)
            ids.append(_place(auth_client, product.pk, f"ha-{n}"))

        def all_done() -> bool:
            return (
                Order.objects.filter(pk__in=ids, status=Order.Status.CONFIRMED).count() == ORDERS
                and _processed(SEND_CONFIRMATION_EMAIL) == ORDERS
                and _processed(NOTIFY_WAREHOUSE) == ORDERS
                and not OutboxEvent.objects.filter(sent_at__isnull=True).exists()
            )

        wait_for(all_done, 120, "every order confirmed, emailed and sent to the warehouse")

    product.refresh_from_db()
    assert product.stock == 1000 - ORDERS
    assert _processed(RESERVE_INVENTORY) == ORDERS
    assert _emails_per_order(cluster_worker) == Counter(dict.fromkeys(ids, 1))
    # Every order reached the warehouse; the two refused calls were tried again.
    posted = Counter(body["order_id"] for _, body, _ in warehouse.requests)
    assert set(posted) == set(ids)
    assert sum(posted.values()) == ORDERS + 2
    # The surviving majority elected another leader.
    assert cluster.queue_leader(queue) != leader
    # The killed node restarts on its data and rejoins: three nodes running again.
    cluster.start_node(leader)
    assert cluster.wait_running(3) == ["hs1", "hs2", "hs3"]
