"""The Redis topology named by the environment, and what is built from it."""

from __future__ import annotations

import pytest
from django.core.exceptions import ImproperlyConfigured
from redis.sentinel import SentinelConnectionPool

from apps.core.redis_topology import (
    SentinelRedis,
    SingleRedis,
    cache_entry,
    dedicated_client,
    redis_topology_from_env,
)
from tests.config.subprocess_env import embedded_environment, manage

SENTINELS = {"REDIS_SENTINELS": "10.0.0.1:26379, 10.0.0.2:26380", "REDIS_SENTINEL_MASTER": "hs"}


def test_no_redis_variable_names_no_redis_and_an_in_process_cache():
    assert redis_topology_from_env({}) is None
    assert cache_entry(None, {})["BACKEND"] == "apps.observability.cache_metrics.LocMemCache"


def test_redis_url_names_one_server():
    assert redis_topology_from_env({"REDIS_URL": "redis://h:6379/2"}) == SingleRedis(
        "redis://h:6379/2"
    )


def test_sentinel_variables_name_the_master_and_replace_redis_url():
    topology = redis_topology_from_env({**SENTINELS, "REDIS_URL": "redis://ignored:6379/0"})

    assert topology == SentinelRedis((("10.0.0.1", 26379), ("10.0.0.2", 26380)), "hs")


@pytest.mark.parametrize(
    "topology", [SingleRedis("redis://h:6379/0"), SentinelRedis((("h", 1), ("g", 2)), "m")]
)
def test_a_topology_is_named_again_by_its_own_environment(topology):
    assert redis_topology_from_env(topology.environment()) == topology


def test_the_sentinel_cache_entry_uses_django_redis_own_sentinel_support():
    topology = SentinelRedis((("10.0.0.1", 26379),), "hs")

    entry = cache_entry(topology, {"SOCKET_TIMEOUT": 0.1, "SOCKET_CONNECT_TIMEOUT": 0.2})

    assert entry == {
        "BACKEND": "django_redis.cache.RedisCache",
        "KEY_PREFIX": "hs",
        "LOCATION": "redis://hs/0",
        "OPTIONS": {
            "SOCKET_TIMEOUT": 0.1,
            "SOCKET_CONNECT_TIMEOUT": 0.2,
            "CONNECTION_FACTORY": "django_redis.pool.SentinelConnectionFactory",
            "CONNECTION_POOL_CLASS": "redis.sentinel.SentinelConnectionPool",
            "SENTINELS": [["10.0.0.1", 26379]],
            "SENTINEL_KWARGS": {"socket_timeout": 0.1, "socket_connect_timeout": 0.2},
        },
    }


def test_a_dedicated_client_of_a_sentinel_client_asks_the_same_sentinels():
    base = SentinelRedis((("10.0.0.1", 26379),), "hs").client(socket_timeout=0.5)

    client = dedicated_client(base, client_name="listener")

    pool = client.connection_pool
    assert isinstance(pool, SentinelConnectionPool)
    assert pool.service_name == "hs"
    assert pool.connection_kwargs["client_name"] == "listener"
    assert pool.connection_kwargs["socket_timeout"] == 0.5
    assert (
        pool.connection_kwargs["connection_pool"]
        is not base.connection_pool.connection_kwargs["connection_pool"]
    )


@pytest.mark.parametrize(
    ("environ", "message"),
    [
        (
            {"REDIS_SENTINELS": "h:26379"},
            "REDIS_SENTINELS and REDIS_SENTINEL_MASTER go together: set both",
        ),
        ({"REDIS_SENTINEL_MASTER": "hs"}, "REDIS_SENTINELS and REDIS_SENTINEL_MASTER go together"),
        (
            {"REDIS_SENTINELS": "h:26379,h", "REDIS_SENTINEL_MASTER": "hs"},
            "REDIS_SENTINELS='h:26379,h': 'h' is not host:port (e.g. 127.0.0.1:26379).",
        ),
        (
            {"REDIS_SENTINELS": "h:0", "REDIS_SENTINEL_MASTER": "hs"},
            "REDIS_SENTINELS='h:0': 'h:0' is not host:port",
        ),
    ],
)
def test_a_half_given_or_malformed_sentinel_setting_is_refused_by_name(environ, message):
    with pytest.raises(
        ImproperlyConfigured, match="^" + message.replace("(", r"\(").replace(")", r"\)")
    ):
        redis_topology_from_env(environ)


def test_a_sentinel_list_without_a_master_name_refuses_to_start(tmp_path):
    env = embedded_environment(tmp_path / "db.sqlite3", REDIS_SENTINELS="127.0.0.1:26379")

    result = manage(env, "check")

    assert result.returncode == 1
    assert result.stderr.strip().splitlines()[-1] == (
        "django.core.exceptions.ImproperlyConfigured: REDIS_SENTINELS and REDIS_SENTINEL_MASTER "
        "go together: set both (e.g. REDIS_SENTINELS=10.0.0.1:26379,10.0.0.2:26379 "
        "REDIS_SENTINEL_MASTER=hs)."
    )
