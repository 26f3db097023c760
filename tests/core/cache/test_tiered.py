"""Behaviour of the read-through accessor against the suite's real Redis and PostgreSQL."""

from __future__ import annotations

import threading
import time
from typing import Any, cast

import pytest
from django.db import connection
from prometheus_client import REGISTRY

from apps.core.cache import make_etag, tiered_cache
from apps.users.models import User
from apps.users.selectors import user_public_profile
from tests.core.cache.nodes import listening
from tests.core.forking import in_child
from tests.factories import UserFactory

pytestmark = pytest.mark.django_db(transaction=True)


def _user(**fields: Any) -> User:
    return cast(User, UserFactory(**fields))


def _counting_loader(user_id: int, calls: list[int], delay: float = 0.0):
    lock = threading.Lock()

    def load():
        with lock:
            calls.append(1)
        time.sleep(delay)  # a slow query widens the window the stampede would use
        try:
            return user_public_profile(user_id=user_id)
        finally:
            connection.close()

    return load


def test_read_through_fills_redis_then_answers_from_l1(make_node):
    user = _user()
    node = listening(make_node())
    calls: list[int] = []
    load = _counting_loader(user.pk, calls)

    first = node.get(f"user:{user.pk}", load, ttl=60)
    second = node.get(f"user:{user.pk}", load, ttl=60)

    assert first is not None
    assert first.data == user_public_profile(user_id=user.pk)
    assert first.etag == make_etag(first.data)
    assert second == first
    assert calls == [1]
    assert f"user:{user.pk}" in node.l1


def test_second_process_reads_the_value_from_redis_without_the_database(make_node):
    user = _user()
    calls: list[int] = []
    load = _counting_loader(user.pk, calls)
    make_node().get(f"user:{user.pk}", load, ttl=60)

    value = make_node().get(f"user:{user.pk}", load, ttl=60)

    assert value is not None
    assert value.data["username"] == user.username
    assert calls == [1]


def test_missing_row_is_not_cached(make_node):
    node = make_node()
    calls: list[int] = []
    load = _counting_loader(987654321, calls)

    assert node.get("user:987654321", load, ttl=60) is None
    assert node.get("user:987654321", load, ttl=60) is None
    assert calls == [1, 1]
    assert node.client is not None
    assert node.client.exists(node.redis_key("user:987654321")) == 0
    assert node.client.exists(node.redis_key("user:987654321") + ":lease") == 0


def test_500_concurrent_misses_on_one_key_run_the_query_at_most_twice(make_node):
    user = _user()
    nodes = [make_node() for _ in range(5)]  # five "worker processes", 100 threads each
    calls: list[int] = []
    load = _counting_loader(user.pk, calls, delay=0.05)
    start = threading.Barrier(500)
    results: list[object] = []

    def read(node):
        start.wait()
        value = node.get(f"user:{user.pk}", load, ttl=60)
        results.append(value.data if value else None)

    threads = [threading.Thread(target=read, args=(nodes[i % 5],)) for i in range(500)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(30)

    assert len(results) == 500
    assert all(result == user_public_profile(user_id=user.pk) for result in results)
    assert 1 <= len(calls) <= 2


def test_waiters_take_over_when_the_lease_holder_dies(make_node):
    user = _user()
    node = make_node()
    assert node.client is not None
    key = f"user:{user.pk}"
    # A filler took the lease and died: nobody will ever release it.
    node.client.set(node.redis_key(key) + ":lease", "dead-holder", px=300)
    calls: list[int] = []

    value = node.get(key, _counting_loader(user.pk, calls), ttl=60)

    assert value is not None
    assert value.data["id"] == user.pk
    assert calls == [1]
    # The taker filled the cache: the next process needs no query.
    assert make_node().get(key, _counting_loader(user.pk, calls), ttl=60) == value
    assert calls == [1]


def test_fill_that_lost_its_lease_to_an_invalidation_is_refused(make_node):
    user = _user()
    node = make_node()
    key = f"user:{user.pk}"
    invalidated = threading.Event()

    def load_then_get_invalidated():
        row = user_public_profile(user_id=user.pk)
        connection.close()
        make_node().invalidate("user", [user.pk])
        invalidated.set()
        return row

    node.get(key, load_then_get_invalidated, ttl=60)

    assert invalidated.is_set()
    assert node.client is not None
    assert node.client.get(node.redis_key(key)) is None
    assert key not in node.l1


def test_hot_key_is_refreshed_early_by_one_caller_before_it_expires(make_node):
    user = _user()
    # A draw near 0 makes XFetch's gap (10 ms x 690) exceed the 5 s left: refresh now.
    node = make_node()
    eager = make_node(l1_max_entries=0, rng=lambda: 1e-300)
    calls: list[int] = []
    node.get(f"user:{user.pk}", _counting_loader(user.pk, calls, delay=0.01), ttl=5)

    refreshed = eager.get(f"user:{user.pk}", _counting_loader(user.pk, calls), ttl=5)

    assert refreshed is not None
    assert len(calls) == 2
    # A caller with an ordinary draw an hour from expiry keeps the cached value.
    make_node(l1_max_entries=0).get(f"user:{user.pk}", _counting_loader(user.pk, calls), ttl=5)
    assert len(calls) == 2


def test_caller_keeps_the_cached_value_while_another_refreshes_early(make_node):
    user = _user()
    node = make_node(l1_max_entries=0, rng=lambda: 1e-300)
    calls: list[int] = []
    first = node.get(f"user:{user.pk}", _counting_loader(user.pk, calls, delay=0.01), ttl=60)
    assert node.client is not None
    node.client.set(node.redis_key(f"user:{user.pk}") + ":lease", "refresher", px=5000)

    value = node.get(f"user:{user.pk}", _counting_loader(user.pk, calls), ttl=60)

    assert value == first
    assert calls == [1]


def test_redis_errors_are_counted(make_node):
    before = REGISTRY.get_sample_value("cache_errors_total", {"operation": "read"}) or 0.0
    node = make_node()
    node.client = node.client.__class__.from_url(
        "redis://127.0.0.1:1/0", socket_connect_timeout=0.1, socket_timeout=0.1
    )
    user = _user()

    value = node.get(f"user:{user.pk}", _counting_loader(user.pk, []), ttl=60)

    assert value is not None
    assert value.data["id"] == user.pk
    after = REGISTRY.get_sample_value("cache_errors_total", {"operation": "read"})
    assert after == before + 1


@pytest.mark.parametrize(("retry_seconds", "read_errors"), [(60.0, 1), (0.0, 2)])
def test_after_a_redis_error_reads_skip_redis_until_the_retry_delay_has_passed(
    make_node, retry_seconds, read_errors
):
    before = REGISTRY.get_sample_value("cache_errors_total", {"operation": "read"}) or 0.0
    node = make_node(retry_after_error_seconds=retry_seconds)
    node.client = node.client.__class__.from_url(
        "redis://127.0.0.1:1/0", socket_connect_timeout=0.1, socket_timeout=0.1
    )
    user = _user()
    calls: list[int] = []

    first = node.get(f"user:{user.pk}", _counting_loader(user.pk, calls), ttl=60)
    second = node.get(f"user:{user.pk}", _counting_loader(user.pk, calls), ttl=60)

    assert first is not None
    assert second is not None
    assert first.data == second.data
    assert calls == [1, 1]
    after = REGISTRY.get_sample_value("cache_errors_total", {"operation": "read"})
    assert after == before + read_errors


def test_a_forked_worker_gets_a_tiered_cache_of_its_own():
    parent = tiered_cache()

    assert in_child(lambda: tiered_cache() is not parent) == 0
    assert tiered_cache() is parent
