"""The cache's Redis connections parse replies with hiredis."""

from __future__ import annotations

import redis.connection
from redis.utils import HIREDIS_AVAILABLE

from apps.core.cache import redis_client


def test_the_cache_connections_parse_replies_with_hiredis():
    client = redis_client()

    assert isinstance(client, redis.Redis)
    assert HIREDIS_AVAILABLE is True
    # redis-py's default parser is hiredis's whenever hiredis is installed.
    parser = client.connection_pool.connection_kwargs["parser_class"]
    assert parser is redis.connection.DefaultParser
