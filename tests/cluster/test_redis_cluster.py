"""The cache, the limiter, invalidation and warm on a real 3 + 3 Redis Cluster.

In-process tests drive the Django cache backend and the tiered cache directly; the
cross-process ones run gunicorn with four workers configured by REDIS_CLUSTER_NODES
alone. The failover test runs last: it kills a master and restarts it as a replica.
"""

from __future__ import annotations

import io
import json
import time
import uuid
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from typing import Any, cast

import pytest
import redis
from django.core.management import call_command
from django.utils.module_loading import import_string
from redis.cluster import RedisCluster

from apps.core.cache import CachedValue, TieredCache, use_tiered_cache
from apps.core.cache.checks import check_cluster_backend
from apps.core.cache.warm import Warmer
from apps.core.db.sticking import RedisPositions
from apps.core.redis_cluster import CLUSTER_BACKEND
from apps.core.redis_topology import cache_entry
from apps.ratelimit.models import RateLimitOverride
from apps.users.cache import user_cache_key
from apps.users.models import User
from apps.users.services import token_create
from deploy.local.processes import wait_until
from deploy.local.redis_cluster import LocalRedisCluster
from tests.cluster.conftest import cluster_client, cluster_topology
from tests.core.cache.nodes import TEST_CONFIG
from tests.factories import PASSWORD, UserFactory
from tests.gunicorn import Gunicorn

LIMITED_PATH = "/api/v1/products/999999"


def _nodes(redis_cluster: LocalRedisCluster) -> tuple[tuple[str, int], ...]:
    return cluster_topology(redis_cluster).nodes


def _cache_entry(redis_cluster: LocalRedisCluster) -> dict[str, Any]:
    options = {"SOCKET_TIMEOUT": 2.0, "SOCKET_CONNECT_TIMEOUT": 2.0}
    return cache_entry(cluster_topology(redis_cluster), options)


def _per_master(cluster: RedisCluster) -> list[int]:
    return [cluster.dbsize(target_nodes=node) for node in cluster.get_primaries()]


# --- the Django cache ---------------------------------------------------------------------


def test_the_django_cache_spreads_keys_over_every_master_and_multi_key_calls_cross_slots(
    redis_cluster, cluster
):
    entry = _cache_entry(redis_cluster)
    django_cache = import_string(CLUSTER_BACKEND)(entry["LOCATION"], entry)
    values = {f"item:{n}": {"n": n} for n in range(300)}

    for key, value in list(values.items())[:100]:
        django_cache.set(key, value, 60)
    django_cache.set_many(dict(list(values.items())[100:]), 60)

    assert [django_cache.get(f"item:{n}") for n in range(100)] == [{"n": n} for n in range(100)]
    assert django_cache.get_many(list(values)) == values
    masters = _per_master(cluster)
    assert len(masters) == 3
    assert all(size > 0 for size in masters)
    assert sum(masters) == 300
    assert django_cache.delete_many([f"item:{n}" for n in range(150)]) == 150
    assert django_cache.get_many(list(values)) == dict(list(values.items())[150:])
    assert django_cache.clear()
    assert sum(_per_master(cluster)) == 0


def test_the_check_refuses_a_single_node_backend_pointed_at_a_cluster_node(
    redis_cluster, cluster, settings
):
    host, port = _nodes(redis_cluster)[0]
    single = {"BACKEND": "django_redis.cache.RedisCache", "LOCATION": f"redis://{host}:{port}/0"}
    # One node answers MOVED for the keys of every other master's slots.
    elsewhere = next(
        f"k{n}"
        for n in range(100)
        if redis_cluster.master_of_slot(cluster.keyslot(f"k{n}")) != port
    )
    with pytest.raises(redis.exceptions.MovedError):
        redis.Redis(host=host, port=port).set(elsewhere, 1)

    settings.CACHES = {"default": single}
    assert [e.id for e in check_cluster_backend()] == ["core.E102"]
    settings.REDIS = cluster_topology(redis_cluster)
    assert [e.id for e in check_cluster_backend()] == ["core.E101"]
    settings.CACHES = {"default": _cache_entry(redis_cluster)}
    assert check_cluster_backend() == []


# --- the tiered cache -----------------------------------------------------------------------


def _data(value: CachedValue | None) -> Any:
    assert value is not None
    return value.data


def _tiered(redis_cluster: LocalRedisCluster) -> TieredCache:
    return TieredCache(cluster_client(redis_cluster, timeout=1.0), TEST_CONFIG)


def test_an_invalidation_on_the_cluster_drops_the_entry_in_another_process_l1(
    redis_cluster, cluster
):
    here, there = _tiered(redis_cluster), _tiered(redis_cluster)
    try:
        for node in (here, there):
            assert node.listener is not None
            assert node.listener.wait_healthy(10)
        loads: list[str] = []

        def loader(version: str) -> Any:
            loads.append(version)
            return {"v": version}

        keys = [f"user:{n}" for n in range(12)]
        for key in keys:
            assert _data(here.get(key, lambda: loader("old"), ttl=60)) == {"v": "old"}
            assert _data(there.get(key, lambda: loader("never"), ttl=60)) == {"v": "old"}
        assert loads == ["old"] * 12  # filled once, through the lease, on its own slot
        assert all(size > 0 for size in _per_master(cluster))

        assert here.invalidate("user", range(12))

        wait_until(lambda: all(there.l1.get(k) is None for k in keys), 10, "the broadcast")
        assert [_data(there.get(k, lambda: loader("new"), ttl=60)) for k in keys] == [
            {"v": "new"}
        ] * 12
    finally:
        here.close()
        there.close()


@pytest.mark.django_db(transaction=True)
def test_warm_stores_on_every_master_and_refuses_a_key_invalidated_after_the_read(
    redis_cluster, cluster
):
    node = _tiered(redis_cluster)
    try:
        warmer = Warmer(node, kind="user", ttl=60)
        warmer.begin()
        node.invalidate("user", [7])  # after the read began: the warm must not store 7
        warmer.store([(n, {"id": n}) for n in range(200)])
        warmer.store([(n, {"id": n}) for n in range(150, 250)])

        assert (warmer.stats.stored, warmer.stats.refused, warmer.stats.already_cached) == (
            249,
            1,
            50,
        )
        assert warmer.stats.refused_keys == [node.redis_key("user:7")]
        assert warmer.stats.pipelines == 2
        assert all(size > 0 for size in _per_master(cluster))
        loaded: list[int] = []
        for n in (0, 100, 249):
            assert _data(node.get(f"user:{n}", lambda: loaded.append(1), ttl=60)) == {"id": n}
        assert loaded == []
    finally:
        node.close()


@pytest.mark.django_db(transaction=True)
def test_the_warm_cache_command_loads_profiles_onto_the_cluster(redis_cluster, cluster):
    users = [cast(User, UserFactory()) for _ in range(30)]
    out = io.StringIO()
    node = _tiered(redis_cluster)
    try:
        with use_tiered_cache(node):
            call_command("warm_cache", "--limit", "30", "--batch-size", "10", stdout=out)
        assert "warmed 30 profiles" in out.getvalue()
        assert "30 stored" in out.getvalue()
        stored = [cluster.get(node.redis_key(user_cache_key(u.pk))) for u in users]
        assert all(value is not None for value in stored)
        assert all(size > 0 for size in _per_master(cluster))
    finally:
        node.close()


def test_write_positions_live_on_the_cluster_and_never_move_back(redis_cluster, cluster):
    store = RedisPositions(cluster_client(redis_cluster, timeout=1.0))
    for user_id in range(1, 31):
        assert store.stick(user_id, 1000 + user_id) == 1000 + user_id
        assert store.stick(user_id, 5) == 1000 + user_id  # an older position loses
    assert [store.position(u) for u in (1, 15, 30, 31)] == [1001, 1015, 1030, None]
    assert all(size > 0 for size in _per_master(cluster))


# --- across four gunicorn workers -------------------------------------------------------------


# Transactional like the failover test below, so that it runs before it (pytest-django
# runs transactional tests after the others, in file order).
@pytest.mark.django_db(transaction=True)
def test_four_workers_on_the_cluster_admit_exactly_the_limit(cluster_server: Gunicorn):
    # Anonymous: one key (the client address) over every worker, on whichever master.
    def client(_: int) -> list[int]:
        return [cluster_server.get(LIMITED_PATH)[0] for _ in range(3)]

    with ThreadPoolExecutor(100) as pool:
        statuses = Counter(s for batch in pool.map(client, range(100)) for s in batch)

    assert statuses == {404: 100, 429: 200}


def _names(
    server: Gunicorn, user_id: int, count: int, headers: dict[str, str] | None = None
) -> list[str]:
    names = []
    for _ in range(count):
        status, _, body = server.request("GET", f"/api/v1/users/{user_id}", headers)
        assert status == 200, body
        names.append(json.loads(body)["display_name"])
    return names


def _rename(server: Gunicorn, headers: dict[str, str], name: str) -> None:
    status, _, body = server.request("PATCH", "/api/v1/users/me", headers, {"display_name": name})
    assert status == 200, body


@pytest.mark.django_db(transaction=True)
def test_a_rename_is_read_fresh_by_every_worker_on_the_cluster(cluster_server: Gunicorn):
    user = cast(User, UserFactory(display_name="Before"))
    # As the user, so that the limit the test above spent on this address does not apply.
    token = token_create(username=user.username, password=PASSWORD)
    headers = {"Authorization": f"Token {token}"}
    assert _names(cluster_server, user.pk, 24, headers) == ["Before"] * 24  # every worker's L1

    _rename(cluster_server, headers, "After")

    assert _names(cluster_server, user.pk, 24, headers) == ["After"] * 24


@pytest.mark.django_db(transaction=True)
def test_killing_a_master_costs_no_5xx_and_cache_and_limiter_recover_within_15_s(
    redis_cluster: LocalRedisCluster, cluster: RedisCluster, cluster_server: Gunicorn
):
    user = cast(User, UserFactory(display_name=f"u{uuid.uuid4().hex[:6]}"))
    # Counted per user, and never refused: every request is recorded in its counter.
    RateLimitOverride.objects.create(user=user, policy="api", limit=1_000_000, window=60)
    token = token_create(username=user.username, password=PASSWORD)
    headers = {"Authorization": f"Token {token}"}
    profile = f"/api/v1/users/{user.pk}"
    key = f"hs:c:{{user:{user.pk}}}"
    statuses: Counter[int] = Counter()

    def send() -> None:
        statuses[cluster_server.request("GET", profile, headers)[0]] += 1
        statuses[cluster_server.get(LIMITED_PATH, headers)[0]] += 1

    send()
    counter = f"{cluster_server.env['RATELIMIT_KEY_PREFIX']}:{{api:sliding_window:user:{user.pk}}}"
    assert cluster.exists(key) == 1
    assert cluster.zcard(counter) == 2

    killed = redis_cluster.kill_master(redis_cluster.master_of_slot(cluster.keyslot(key)))
    started = time.monotonic()

    def cache_and_limiter_work() -> bool:
        send()
        try:
            cluster.delete(key)
            before = cluster.zcard(counter)
            send()
            return bool(cluster.exists(key)) and cluster.zcard(counter) == before + 2
        except (redis.RedisError, redis.exceptions.RedisClusterException):
            return False

    try:
        wait_until(cache_and_limiter_work, 15, "the cache and the limiter after the failover")
        recovered = time.monotonic() - started
    finally:
        redis_cluster.restart_node(killed)
    redis_cluster.wait_healthy()

    print(f"cluster failover: cache and limiter back {recovered:.1f} s after SIGKILL")
    assert killed not in redis_cluster.master_ports()
    assert set(statuses) <= {200, 404}
