"""The cached public profile: invalidation on commit, no stale write-back, Redis outages."""

from __future__ import annotations

import os
import random
import signal
import threading
import time
from dataclasses import replace
from functools import partial
from typing import Any, cast

import pytest
from django.db import connection, transaction
from prometheus_client import REGISTRY
from redis import Redis

from apps.core.cache import TieredCache, redis_client, use_tiered_cache
from apps.core.cache.models import PendingInvalidation
from apps.core.cache.pending import PendingInvalidationLog
from apps.users.cache import (
    USER_CACHE_KIND,
    user_cache_key,
    user_profile_cache_document,
    user_profile_get_cached,
)
from apps.users.models import User
from apps.users.selectors import user_public_profile
from apps.users.services import user_touch_last_active, user_update_profile
from deploy.local.servers import Servers
from tests.core.cache.nodes import TEST_CONFIG, listening
from tests.factories import UserFactory
from tests.users.nodes import watched, watched_l1

pytestmark = pytest.mark.django_db(transaction=True)


def _user(**fields: Any) -> User:
    return cast(User, UserFactory(**fields))


def _read(node: TieredCache, user_id: int):
    """Return the profile ``node`` reads through, filling as the app fills."""
    value = node.get(user_cache_key(user_id), lambda: _primary_document(user_id), ttl=3600)
    return None if value is None else value.data["profile"]


def _primary_profile(user_id: int):
    return user_public_profile(user_id=user_id, using="default")


def _primary_document(user_id: int):
    profile = _primary_profile(user_id)
    return None if profile is None else user_profile_cache_document(profile)


@pytest.fixture
def in_redis(make_node):
    """Return a tiered cache without L1: what it reads is what Redis holds."""
    return make_node(l1_max_entries=0)


def _stored(in_redis: TieredCache, user_id: int):
    """Return the document Redis holds for the user."""
    value = in_redis.get(user_cache_key(user_id), lambda: None, ttl=3600)
    return None if value is None else value.data


def test_user_cache_key_is_user_and_id():
    assert user_cache_key(42) == "user:42"


def test_committed_update_is_read_fresh_in_every_process(here, there):
    user = _user(display_name="Before")
    assert _read(here, user.pk)["display_name"] == "Before"
    assert _read(there, user.pk)["display_name"] == "Before"
    assert user_cache_key(user.pk) in there.l1

    user_update_profile(user=user, display_name="After")

    assert _read(here, user.pk)["display_name"] == "After"
    watched_l1(there).wait_dropped(user_cache_key(user.pk))
    assert _read(there, user.pk)["display_name"] == "After"


def test_rolled_back_update_invalidates_nothing(here, there):
    user = _user(display_name="Kept")
    marker = _user()
    cached = _read(there, user.pk)
    _read(there, marker.pk)
    assert here.client is not None
    stored = here.client.get(here.redis_key(user_cache_key(user.pk)))
    last_invalidation = here.client.get(here.redis_key(user_cache_key(user.pk)) + ":inv")

    with pytest.raises(RuntimeError, match="roll back"):
        _update_then_fail(user, "Never")

    # Messages arrive in the order Redis published them: once a later one is here, a
    # (wrong) invalidation sent by the rollback would have arrived too.
    here.invalidate(USER_CACHE_KIND, [marker.pk])
    watched_l1(there).wait_dropped(user_cache_key(marker.pk))
    assert there.l1.get(user_cache_key(user.pk)) is not None
    assert here.client.get(here.redis_key(user_cache_key(user.pk))) == stored
    assert here.client.get(here.redis_key(user_cache_key(user.pk)) + ":inv") == last_invalidation
    assert _read(there, user.pk) == cached


def _update_then_fail(user: User, name: str) -> None:
    with transaction.atomic():
        user_update_profile(user=user, display_name=name)
        raise RuntimeError("roll back")


def test_activity_updates_invalidate_nothing(here):
    user = _user()
    _read(here, user.pk)
    assert here.client is not None
    key = here.redis_key(user_cache_key(user.pk))
    last_invalidation = here.client.get(key + ":inv")

    assert user_touch_last_active(user_id=user.pk)
    User.objects.filter(pk=user.pk).update(last_login=None)

    assert here.client.exists(key) == 1
    assert here.client.get(key + ":inv") == last_invalidation


@pytest.mark.parametrize(
    "write",
    [
        pytest.param(
            lambda u: User.objects.filter(pk=u.pk).update(display_name="Bulk"), id="update"
        ),
        pytest.param(
            lambda u: User.objects.bulk_update([_renamed(u, "Bulk")], ["display_name"]),
            id="bulk_update",
        ),
        pytest.param(
            lambda u: User.objects.bulk_create(
                [User(username=u.username, display_name="Bulk", date_joined=u.date_joined)],
                update_conflicts=True,
                unique_fields=["username"],
                update_fields=["display_name"],
            ),
            id="bulk_create_update_conflicts",
        ),
        pytest.param(lambda u: User.objects.filter(pk=u.pk).delete(), id="queryset_delete"),
    ],
)
def test_bulk_writes_invalidate_the_cached_profile(here, there, write):
    user = _user(display_name="Before")
    other = _user(display_name="Untouched")
    _read(here, user.pk), _read(there, user.pk), _read(there, other.pk)

    write(user)

    expected = _primary_profile(user.pk)
    assert _read(here, user.pk) == expected
    watched_l1(there).wait_dropped(user_cache_key(user.pk))
    assert _read(there, user.pk) == expected
    assert expected is None or expected["display_name"] == "Bulk"
    assert user_cache_key(other.pk) in there.l1


def _renamed(user: User, name: str) -> User:
    user.display_name = name
    return user


def test_stale_write_back_loses_in_randomized_interleavings(make_node, in_redis, here):
    """Readers pause after their database read while writers commit; the cache ends fresh.

    Each round draws a schedule of reader starts (each reads the database and pauses),
    committed writes, and reader resumptions; every reader is its own "process".
    """
    rng = random.Random(20261129)
    user = _user(display_name="v0")
    readers = [watched(make_node()) for _ in range(3)]
    assert here.client is not None
    rejected_before = REGISTRY.get_sample_value("cache_fills_rejected_total") or 0.0
    for round_number in range(400):
        schedule = _draw_schedule(rng)
        _play(schedule, user, readers, round_number)

        fresh = _primary_profile(user.pk)
        stored = _stored(in_redis, user.pk)
        assert stored is None or stored["profile"] == fresh, (
            f"round {round_number}: Redis holds a stale profile after {schedule}"
        )
        for node in readers:
            # Each L1 ends empty or fresh once the round's invalidations have arrived.
            watched_l1(node).wait_until(partial(_l1_is_empty_or, node, user.pk, fresh))
            assert _read(node, user.pk) == fresh
    # The schedules did produce fills computed before a commit, and those were refused.
    assert (REGISTRY.get_sample_value("cache_fills_rejected_total") or 0.0) > rejected_before


def _l1_is_empty_or(node: TieredCache, user_id: int, expected: Any) -> bool:
    held = node.l1.get(user_cache_key(user_id))
    return held is None or held.data["profile"] == expected


def _draw_schedule(rng: random.Random) -> list[tuple[str, int]]:
    """Return reader starts and writes in random order, each resume after its start."""
    readers, writes = rng.randint(1, 3), rng.randint(1, 2)
    schedule = [("start", r) for r in range(readers)] + [("write", w) for w in range(writes)]
    rng.shuffle(schedule)
    for reader in range(readers):
        started_at = schedule.index(("start", reader))
        schedule.insert(rng.randint(started_at + 1, len(schedule)), ("resume", reader))
    return schedule


def _play(
    schedule: list[tuple[str, int]], user: User, nodes: list[TieredCache], round_number: int
) -> None:
    paused = [threading.Event() for _ in nodes]
    release = [threading.Event() for _ in nodes]
    threads = []

    def reader(index: int) -> None:
        def load() -> Any:
            row = _primary_document(user.pk)
            paused[index].set()
            release[index].wait(5)
            return row

        try:
            nodes[index].get(user_cache_key(user.pk), load, ttl=3600)
        finally:
            paused[index].set()
            connection.close()

    for kind, index in schedule:
        if kind == "start":
            thread = threading.Thread(target=reader, args=(index,))
            threads.append(thread)
            thread.start()
            # Paused after its read, or waiting on another reader's lease.
            paused[index].wait(0.02)
        elif kind == "write":
            user_update_profile(user=user, display_name=f"v{round_number}.{index}")
        else:
            release[index].set()
    for event in release:
        event.set()
    for thread in threads:
        thread.join(10)


def test_profile_api_answers_304_from_the_cache_without_the_database(
    here, api_client, django_assert_num_queries
):
    user = _user()
    first = api_client.get(f"/api/v1/users/{user.pk}")
    assert first.status_code == 200

    with django_assert_num_queries(0):
        revalidated = api_client.get(f"/api/v1/users/{user.pk}", HTTP_IF_NONE_MATCH=first["ETag"])
        again = api_client.get(f"/api/v1/users/{user.pk}")

    assert revalidated.status_code == 304
    assert revalidated["ETag"] == first["ETag"]
    assert again.json() == first.json()
    assert first["Cache-Control"] == "public, max-age=5, s-maxage=5, must-revalidate"


def test_profile_accessor_raises_not_found_for_an_inactive_user(here):
    user = _user(is_active=False)

    with pytest.raises(Exception, match="User not found"):
        user_profile_get_cached(user_id=user.pk)


@pytest.fixture
def private_redis():
    """Start a Redis of this test's own, so it can be paused and stopped; yield (url, pid)."""
    servers = Servers()
    try:
        url = servers.start_redis()
        yield url, servers.processes[-1].popen.pid, servers
    finally:
        servers.stop()


def test_profile_survives_a_redis_outage_and_is_fresh_after_it(private_redis, api_client):
    url, pid, servers = private_redis
    client = Redis.from_url(url, socket_connect_timeout=0.1, socket_timeout=0.1)
    node = TieredCache(
        client,
        replace(TEST_CONFIG, retry_after_error_seconds=0.2),
        pending=PendingInvalidationLog(),
    )
    try:
        listening(node)
        with use_tiered_cache(node):
            user = _user(display_name="Before")
            assert api_client.get(f"/api/v1/users/{user.pk}").json()["display_name"] == "Before"
            old_payload = client.get(node.redis_key(user_cache_key(user.pk)))
            assert old_payload is not None
            errors_before = (
                REGISTRY.get_sample_value("cache_errors_total", {"operation": "invalidate"}) or 0.0
            )

            os.kill(pid, signal.SIGSTOP)  # Redis hangs: connections open, no answers
            try:
                user_update_profile(user=user, display_name="During")
                during = [api_client.get(f"/api/v1/users/{user.pk}") for _ in range(5)]
            finally:
                os.kill(pid, signal.SIGCONT)

            assert [r.status_code for r in during] == [200] * 5
            assert {r.json()["display_name"] for r in during} == {"During"}
            assert (
                REGISTRY.get_sample_value("cache_errors_total", {"operation": "invalidate"})
                == errors_before + 1
            )
            assert PendingInvalidation.objects.filter(kind="user", idents=[user.pk]).exists()
            # Redis is back with the old profile still stored: the recorded invalidation,
            # replayed before this process reads Redis again, drops it. The pause is the
            # breaker's retry_after_error_seconds, after which Redis is tried again.
            time.sleep(0.25)
            after = api_client.get(f"/api/v1/users/{user.pk}")
            assert after.json()["display_name"] == "During"
            assert client.get(node.redis_key(user_cache_key(user.pk))) != old_payload
            assert not PendingInvalidation.objects.exists()

            servers.stop()  # Redis gone for good: still answered from the database
            gone = [api_client.get(f"/api/v1/users/{user.pk}") for _ in range(3)]
            assert [r.status_code for r in gone] == [200] * 3
            assert gone[-1].json()["display_name"] == "During"
    finally:
        node.close()


def test_redis_client_is_the_pooled_django_redis_client():
    client = redis_client()

    assert client is not None
    assert client.ping()


# --- The profile's shape: declared once, versioned ------------------------------------


@pytest.fixture
def with_first_name(monkeypatch):
    """Add ``first_name`` to the public profile's declaration, as a deploy would."""
    fields = (*User.PUBLIC_PROFILE_FIELDS, "first_name")
    monkeypatch.setattr(User, "PUBLIC_PROFILE_FIELDS", fields)
    return fields


def _schema_profile(client) -> dict[str, Any]:
    schema = client.get("/api/schema/", HTTP_ACCEPT="application/vnd.oai.openapi+json").json()
    return cast(dict[str, Any], schema["components"]["schemas"]["PublicProfileOutput"])


def test_a_field_added_to_the_declaration_is_documented_cached_and_served(
    here, in_redis, api_client, client, with_first_name
):
    user = _user(first_name="Ada")

    response = api_client.get(f"/api/v1/users/{user.pk}")

    assert list(_schema_profile(client)["properties"]) == list(with_first_name)
    assert list(response.json()) == list(with_first_name)
    assert response.json()["first_name"] == "Ada"
    assert _stored(in_redis, user.pk)["profile"] == response.json()


@pytest.mark.parametrize(
    "write",
    [
        pytest.param(
            lambda u: _renamed_first(u, "Grace").save(update_fields=["first_name"]), id="save"
        ),
        pytest.param(
            lambda u: User.objects.filter(pk=u.pk).update(first_name="Grace"), id="update"
        ),
    ],
)
def test_a_field_added_to_the_declaration_flushes_the_profile_when_written(
    here, api_client, with_first_name, write
):
    user = _user(first_name="Ada")
    assert api_client.get(f"/api/v1/users/{user.pk}").json()["first_name"] == "Ada"

    write(user)

    assert api_client.get(f"/api/v1/users/{user.pk}").json()["first_name"] == "Grace"


def test_a_field_not_declared_is_not_shown_and_its_writes_flush_nothing(here, api_client):
    user = _user(first_name="Ada")
    assert "first_name" not in api_client.get(f"/api/v1/users/{user.pk}").json()
    assert here.client is not None
    key = here.redis_key(user_cache_key(user.pk))
    last_invalidation = here.client.get(key + ":inv")

    User.objects.filter(pk=user.pk).update(first_name="Grace")
    _renamed_first(user, "Alan").save(update_fields=["first_name"])

    assert here.client.exists(key) == 1
    assert here.client.get(key + ":inv") == last_invalidation


def _renamed_first(user: User, name: str) -> User:
    user.first_name = name
    return user


def test_profile_cached_by_code_of_another_shape_is_never_served_nor_its_etag_matched(
    here, in_redis, api_client, monkeypatch
):
    user = _user(first_name="Ada")
    old = api_client.get(f"/api/v1/users/{user.pk}")
    old_version = _stored(in_redis, user.pk)["version"]
    monkeypatch.setattr(User, "PUBLIC_PROFILE_FIELDS", (*User.PUBLIC_PROFILE_FIELDS, "first_name"))

    new = api_client.get(f"/api/v1/users/{user.pk}", HTTP_IF_NONE_MATCH=old["ETag"])

    assert new.status_code == 200
    assert new.json() == {**old.json(), "first_name": "Ada"}
    assert new["ETag"] != old["ETag"]
    stored = _stored(in_redis, user.pk)
    assert stored["version"] != old_version
    assert stored["profile"] == new.json()
    # And back: the documents of the newer shape are not served to the older code.
    monkeypatch.undo()
    assert api_client.get(f"/api/v1/users/{user.pk}").content == old.content


def test_profile_cached_without_a_version_is_replaced_on_read(here, in_redis, api_client):
    user = _user(display_name="Fresh")
    key = user_cache_key(user.pk)
    in_redis.get(key, lambda: {"id": user.pk, "username": "old-shape"}, ttl=3600)

    response = api_client.get(f"/api/v1/users/{user.pk}")

    assert response.json() == _primary_profile(user.pk)
    assert _stored(in_redis, user.pk)["profile"] == response.json()


def test_invalidating_user_id_drops_the_profile_whatever_its_version(
    here, there, in_redis, api_client
):
    user = _user()
    api_client.get(f"/api/v1/users/{user.pk}")
    _read(there, user.pk)

    here.invalidate(USER_CACHE_KIND, [user.pk])

    watched_l1(there).wait_dropped(user_cache_key(user.pk))
    assert _stored(in_redis, user.pk) is None
