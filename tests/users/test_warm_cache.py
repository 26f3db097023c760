"""The warm_cache command: one query and one pipeline per batch, idempotent, never stale."""

from __future__ import annotations

import io
import json
from datetime import timedelta
from typing import Any, cast

import pytest
from django.core.management import CommandError, call_command
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.utils import timezone
from redis import Redis

from apps.core.cache import TieredCache, redis_client, use_tiered_cache
from apps.core.cache.warm import Warmer
from apps.users.cache import (
    USER_CACHE_KIND,
    user_cache_key,
    user_profile_cache_document,
    user_profile_get_cached,
)
from apps.users.models import User
from apps.users.selectors import user_public_profile
from apps.users.services import user_update_profile
from deploy.local.processes import free_port
from tests.core.cache.nodes import TEST_CONFIG
from tests.factories import UserFactory

pytestmark = pytest.mark.django_db(transaction=True)


def _user(**fields: Any) -> User:
    return cast(User, UserFactory(**fields))


class CountingRedis(Redis):
    """The suite's Redis, counting the pipelines and the lone commands sent to it."""

    pipelines = 0
    commands = 0

    def pipeline(self, *args, **kwargs):
        type(self).pipelines += 1
        return super().pipeline(*args, **kwargs)

    def execute_command(self, *args, **kwargs):
        type(self).commands += 1
        return super().execute_command(*args, **kwargs)


@pytest.fixture
def counted():
    """Install a tiered cache whose Redis client counts pipelines; yield it."""
    base = redis_client()
    assert isinstance(base, Redis)
    CountingRedis.pipelines = CountingRedis.commands = 0
    node = TieredCache(CountingRedis(connection_pool=base.connection_pool), TEST_CONFIG)
    with use_tiered_cache(node):
        yield node
    node.close()


def _users(count: int) -> list[User]:
    now = timezone.now()
    users = [UserFactory.build(last_active=now - timedelta(seconds=i)) for i in range(count)]
    return User.objects.bulk_create(users)


def _cached(node: TieredCache, user_id: int):
    """Return the document Redis holds (the node's L1 is unused: it does not listen)."""
    value = node.get(user_cache_key(user_id), lambda: None, ttl=3600)
    return None if value is None else value.data


def _document(user_id: int):
    profile = user_public_profile(user_id=user_id)
    return None if profile is None else user_profile_cache_document(profile)


def _warm(*args: str) -> str:
    out = io.StringIO()
    call_command("warm_cache", *args, stdout=out)
    return out.getvalue()


def test_warm_cache_uses_one_query_and_one_pipeline_per_batch(counted):
    users = _users(25)

    with CaptureQueriesContext(connection) as queries:
        output = _warm("--limit", "25", "--batch-size", "10")

    assert len(queries) == 3  # batches of 10, 10 and 5
    assert CountingRedis.pipelines == 1 + 3  # the start, then one per batch
    assert CountingRedis.commands == 0  # nothing outside the pipelines
    assert "warmed 25 profiles" in output
    assert "25 stored, 0 already cached, 0 changed meanwhile" in output
    for user in users:
        assert _cached(counted, user.pk) == _document(user.pk)


def test_warmed_profile_is_served_byte_for_byte_as_a_cold_read_serves_it(counted, api_client):
    (user,) = _users(1)
    _warm("--limit", "1")

    with CaptureQueriesContext(connection) as queries:
        warmed = api_client.get(f"/api/v1/users/{user.pk}")
    assert queries.captured_queries == []  # answered from what the warm stored
    counted.invalidate(USER_CACHE_KIND, [user.pk])
    cold = api_client.get(f"/api/v1/users/{user.pk}")

    assert warmed.status_code == cold.status_code == 200
    assert warmed.content == cold.content
    assert warmed["ETag"] == cold["ETag"]
    assert json.loads(warmed.content) == user_public_profile(user_id=user.pk)


def test_warm_cache_loads_the_most_recently_active_users_first(counted):
    users = _users(5)  # users[0] is the most recent
    idle = _user(last_active=None)

    _warm("--limit", "3", "--batch-size", "2")

    assert [_cached(counted, u.pk) is not None for u in users] == [True] * 3 + [False] * 2
    assert _cached(counted, idle.pk) is None


def test_warm_cache_rerun_stores_nothing_new(counted):
    _users(6)
    _warm("--limit", "6", "--batch-size", "4")
    assert counted.client is not None
    before = {k: counted.client.get(k) for k in counted.client.keys("hs:c:user:*")}

    output = _warm("--limit", "6", "--batch-size", "4")

    assert "0 stored, 6 already cached" in output
    assert {k: counted.client.get(k) for k in counted.client.keys("hs:c:user:*")} == before


def test_warm_cache_never_overwrites_a_newer_cached_value(counted):
    (user,) = _users(1)
    counted.get(user_cache_key(user.pk), lambda: {"id": user.pk, "newer": True}, ttl=3600)

    output = _warm("--limit", "1")

    assert "0 stored, 1 already cached" in output
    assert _cached(counted, user.pk) == {"id": user.pk, "newer": True}


def test_warm_refuses_rows_read_before_an_invalidation(counted):
    (user,) = _users(1)
    warmer = Warmer(counted, kind=USER_CACHE_KIND, ttl=3600)
    warmer.begin()
    document = _document(user.pk)  # the batch's read...
    user_update_profile(user=user, display_name="Newer")  # ...then a commit and its flush

    warmer.store([(user.pk, document)])

    assert warmer.stats.refused == 1
    assert _cached(counted, user.pk) is None
    assert user_profile_get_cached(user_id=user.pk).data["display_name"] == "Newer"


def test_warm_cache_dry_run_writes_nothing(counted):
    (user,) = _users(1)

    output = _warm("--dry-run")

    assert "dry run: would warm 1 profiles" in output
    assert CountingRedis.pipelines == 0
    assert _cached(counted, user.pk) is None


def test_warm_cache_refuses_bad_arguments(counted):
    from django.core.management import CommandError

    with pytest.raises(CommandError, match="--batch-size"):
        _warm("--batch-size", "0")


def test_invalidation_message_has_the_contract_shape(counted):
    assert counted.client is not None
    pubsub = counted.client.pubsub(ignore_subscribe_messages=True)
    pubsub.subscribe("cache:invalidate")
    pubsub.get_message(timeout=1)  # the subscription's confirmation, ignored
    counted.invalidate(USER_CACHE_KIND, [7])
    message = pubsub.get_message(timeout=2)
    pubsub.close()

    assert message is not None
    assert json.loads(message["data"]) == {"type": "user", "id": 7}


def test_warm_cache_against_a_redis_that_does_not_answer_stops_with_a_clear_error():
    _user()
    dead = Redis(port=free_port(), socket_connect_timeout=0.2, socket_timeout=0.2)
    with use_tiered_cache(TieredCache(dead, TEST_CONFIG)), pytest.raises(CommandError) as stopped:
        call_command("warm_cache", stdout=io.StringIO())

    assert "Redis did not take a batch after 3 attempts" in str(stopped.value)
