"""Sticking: the stored write position of a user only moves forward; tasks leave theirs."""

from __future__ import annotations

import random
import threading
import uuid
from collections.abc import Iterator
from typing import cast

import pytest
from celery import shared_task
from django.conf import settings
from redis import Redis

from apps.core.db.sticking import (
    KEY_PREFIX,
    LocalPositions,
    Positions,
    RedisPositions,
    act_for_user,
    positions,
)
from apps.orders.models import Product
from tests.core.db.live import caught_up_replica, primary_lsn
from tests.factories import ProductFactory

ALIAS = "replica_1"
# Past 2**53, where a double no longer tells neighbouring positions apart.
BASE = 2**60


@pytest.fixture(params=["redis", "local"])
def store(request: pytest.FixtureRequest) -> Iterator[Positions]:
    if request.param == "local":
        yield LocalPositions()
        return
    client = Redis.from_url(settings.REDIS_URL)
    try:
        yield RedisPositions(client)
    finally:
        client.close()


def test_the_stored_position_never_moves_backwards_under_concurrent_writers(store):
    user_id = random.randrange(10**9, 10**10)
    written: list[int] = []
    seen: list[int] = []
    returned_below: list[tuple[int, int]] = []
    done = threading.Event()

    def writer(seed: int) -> None:
        rng = random.Random(seed)
        for _ in range(300):
            lsn = BASE + rng.randrange(2000)
            written.append(lsn)
            stored = store.stick(user_id, lsn)
            if stored < lsn:
                returned_below.append((stored, lsn))

    def reader() -> None:
        while not done.is_set():
            position = store.position(user_id)
            if position is not None:
                seen.append(position)

    watching = threading.Thread(target=reader)
    watching.start()
    writers = [threading.Thread(target=writer, args=(seed,)) for seed in range(8)]
    for thread in writers:
        thread.start()
    for thread in writers:
        thread.join()
    done.set()
    watching.join()

    assert store.position(user_id) == max(written)
    assert returned_below == []
    assert seen == sorted(seen)


def test_a_position_is_kept_for_the_sticking_ttl_and_never_deleted(settings):
    client = Redis.from_url(settings.REDIS_URL)
    try:
        store = RedisPositions(client)
        user_id = random.randrange(10**9, 10**10)
        store.stick(user_id, BASE + 5)
        store.stick(user_id, BASE + 1)
        ttl = client.ttl(f"{KEY_PREFIX}{user_id}")
        assert 0 < ttl <= settings.DATABASE_STICKING_SECONDS
        assert store.position(user_id) == BASE + 5
    finally:
        client.close()


@shared_task(name="tests.core.db.confirm_for_user")
def confirm_for_user(user_id: int, product_id: int) -> None:
    act_for_user(user_id)
    Product.objects.filter(pk=product_id).update(stock=0)


@pytest.mark.django_db(transaction=True, databases=["default", ALIAS])
def test_a_task_acting_for_a_user_leaves_its_write_position_under_that_user(settings):
    settings.DATABASE_REPLICA_MAX_LAG_SECONDS = 3600
    product = cast(Product, ProductFactory())
    user_id = int(uuid.uuid4().int % 10**9) + 10**9
    with caught_up_replica(ALIAS):
        before = primary_lsn()

        confirm_for_user.apply(args=(user_id, product.pk))

        stored = positions().position(user_id)
    assert stored is not None
    assert stored > before
