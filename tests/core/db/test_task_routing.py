"""The read-after token travels in task headers, so a task never reads a lagging replica."""

from __future__ import annotations

import os
import queue
from collections.abc import Iterator
from decimal import Decimal
from types import SimpleNamespace
from typing import Any

import pytest
from celery.contrib.testing.worker import start_worker
from django.db import transaction
from django.http import HttpRequest, JsonResponse
from django.urls import path
from django.views.decorators.csrf import csrf_exempt
from rest_framework.test import APIClient

from apps.core.db.health import monitor
from apps.core.db.lsn import parse_lsn
from apps.core.db.middleware import READ_AFTER_HEADER
from apps.core.db.state import current_state, routing_scope
from apps.core.db.sticking import act_for_user, positions
from apps.core.db.task_routing import READ_AFTER_TASK_HEADER, close_task_scope, open_task_scope
from apps.orders.models import Product
from config.celery import app
from tests.core.db.live import (
    live_replica,
    primary_lsn,
    replay_paused,
    replica_urls,
    statements,
    wait_for,
)

ALIAS = "replica_1"
QUEUE = f"highscale.test.replica-routing.{os.getpid()}"
pytestmark = pytest.mark.django_db(transaction=True, databases=["default", ALIAS])

results: queue.Queue[dict[str, Any]] = queue.Queue()


@app.task(name="tests.core.db.read_product", bind=True)
def read_product(self: Any, product_id: int) -> None:
    with statements(ALIAS) as counted:
        found = Product.objects.filter(pk=product_id).exists()
    state = current_state()
    results.put(
        {
            "found": found,
            "header": getattr(self.request, READ_AFTER_TASK_HEADER, None),
            "read_after": state.read_after if state else None,
            "replica_queries": counted[ALIAS],
        }
    )


@csrf_exempt
def create_and_enqueue(request: HttpRequest) -> JsonResponse:
    with transaction.atomic():
        product = Product.objects.create(sku="TASK-1", name="Queued", price=Decimal(1), stock=1)
        transaction.on_commit(lambda: read_product.apply_async(args=(product.pk,), queue=QUEUE))
    return JsonResponse({"id": product.pk})


urlpatterns = [path("test/create-and-enqueue", create_and_enqueue)]


@pytest.fixture
def replica(settings) -> Iterator[str]:
    settings.DATABASE_REPLICA_MAX_LAG_SECONDS = 3600
    url = replica_urls()[0]
    with live_replica(ALIAS, url):
        caught_up = primary_lsn()
        wait_for(lambda: monitor.usable(ALIAS, caught_up), what="the replica catching up")
        yield url


@pytest.fixture
def worker(settings) -> Iterator[None]:
    if app.conf.task_always_eager:
        pytest.fail("no broker: the harness always sets CELERY_BROKER_URL")
    with start_worker(
        app,
        perform_ping_check=False,
        queues=[QUEUE],
        shutdown_timeout=30,
        without_heartbeat=True,
        prefetch_multiplier=4,
    ):
        yield


@pytest.mark.urls(__name__)
def test_a_task_enqueued_on_commit_reads_the_row_while_replay_is_paused(replica, worker):
    with replay_paused(replica):
        created = APIClient().post("/test/create-and-enqueue")
        assert created.status_code == 200
        token = created[READ_AFTER_HEADER]

        seen = results.get(timeout=30)

        assert seen == {
            "found": True,
            "header": token,
            "read_after": parse_lsn(token),
            "replica_queries": 0,
        }

        # The same task enqueued with no write behind it reads the lagging replica.
        read_product.apply_async(args=(created.json()["id"],), queue=QUEUE)
        assert results.get(timeout=30) == {
            "found": False,
            "header": None,
            "read_after": None,
            "replica_queries": 1,
        }


def test_an_eager_task_inherits_the_token_of_the_scope_that_ran_it(replica):
    with replay_paused(replica), routing_scope() as state:
        product = Product.objects.create(sku="EAGER-1", name="Eager", price=Decimal(1), stock=1)

        read_product.apply(args=(product.pk,))

        assert results.get(timeout=5) == {
            "found": True,
            "header": None,
            "read_after": state.read_after,
            "replica_queries": 0,
        }
        assert state.read_after is not None


def _task() -> Any:
    """A stand-in for a task as Celery hands it to its signal receivers: a request."""
    return SimpleNamespace(request=SimpleNamespace())


def test_a_task_that_wrote_for_no_user_ends_without_reading_the_wal_position(replica):
    task = _task()
    open_task_scope(task=task)
    Product.objects.create(sku="NOUSER-1", name="No user", price=Decimal(1), stock=1)
    state = current_state()
    assert state is not None
    assert state.wrote

    with statements("default") as counted:
        close_task_scope(task=task)

    assert counted["default"] == 0
    assert current_state() is None


def test_a_task_that_wrote_for_a_user_leaves_the_position_under_that_user(replica):
    user_id = 900_000 + os.getpid() % 1000
    task = _task()
    open_task_scope(task=task)
    Product.objects.create(sku="USER-1", name="For a user", price=Decimal(1), stock=1)
    act_for_user(user_id)
    before = primary_lsn()

    with statements("default") as counted:
        close_task_scope(task=task)

    assert counted["default"] == 1
    stored = positions().position(user_id)
    assert stored is not None
    assert stored >= before
