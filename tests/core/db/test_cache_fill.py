"""A lagging replica never feeds the cache: fills read the primary, whatever the router says."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any, NoReturn

import psycopg
import pytest
from rest_framework.test import APIClient

from apps.core.cache import TieredCache, use_tiered_cache
from apps.core.db.health import monitor
from apps.core.db.middleware import READ_AFTER_HEADER
from apps.core.db.state import routing_scope
from apps.users.cache import user_cache_key, user_profile_get_cached
from apps.users.models import User
from tests.core.cache.nodes import NodeFactory, listening, node_factory
from tests.core.db.live import (
    live_replica,
    primary_lsn,
    replay_paused,
    replica_test_db_url,
    replica_urls,
    replicated,
    statements,
    wait_for,
)

ALIAS = "replica_1"
pytestmark = pytest.mark.django_db(transaction=True, databases=["default", ALIAS])


def _name_on_replica(url: str, user_id: int) -> str | None:
    with psycopg.connect(replica_test_db_url(url), autocommit=True) as conn:
        row = conn.execute("SELECT display_name FROM users_user WHERE id = %s", (user_id,))
        found = row.fetchone()
    return None if found is None else str(found[0])


def _no_database(*args: Any) -> NoReturn:
    raise AssertionError("the value should have come from Redis")


@pytest.fixture
def make_node() -> Iterator[NodeFactory]:
    yield from node_factory()


@pytest.fixture
def here(make_node: NodeFactory) -> Iterator[TieredCache]:
    """Install a fresh tiered cache, subscribed to invalidations, as this process's."""
    node = listening(make_node())
    with use_tiered_cache(node):
        yield node


@pytest.fixture
def replica(settings) -> Iterator[str]:
    settings.DATABASE_REPLICA_MAX_LAG_SECONDS = 3600
    url = replica_urls()[0]
    with live_replica(ALIAS, url):
        caught_up = primary_lsn()
        wait_for(lambda: monitor.usable(ALIAS, caught_up), what="the replica catching up")
        yield url


def test_profile_cache_refills_from_the_primary_while_replay_is_paused(
    replica, here, make_node, user, auth_client
):
    user.display_name = "Before"
    user.save(update_fields=["display_name"])
    replicated(ALIAS)
    path = f"/api/v1/users/{user.pk}"
    assert APIClient().get(path).json()["display_name"] == "Before"

    with replay_paused(replica):
        patched = auth_client.patch("/api/v1/users/me", {"display_name": "After"}, format="json")
        assert patched.status_code == 200
        assert _name_on_replica(replica, user.pk) == "Before"

        # A client without the token is routed to the lagging replica for its reads...
        with routing_scope():
            assert User.objects.get(pk=user.pk).display_name == "Before"
        # ...yet the profile it gets, and the value the miss put in Redis, are the new row.
        with statements(ALIAS) as counted:
            fresh = APIClient().get(path)
        assert fresh.status_code == 200
        assert fresh.json()["display_name"] == "After"
        assert counted == {ALIAS: 0}
        other_process = make_node()
        stored = other_process.get(user_cache_key(user.pk), _no_database, ttl=3600)
        assert stored is not None
        assert stored.data["profile"]["display_name"] == "After"
        with routing_scope():
            assert user_profile_get_cached(user_id=user.pk).data["display_name"] == "After"

        # The writer's own next request, with its token, agrees.
        token = patched[READ_AFTER_HEADER]
        again = APIClient().get(path, headers={READ_AFTER_HEADER: token})
        assert again.json()["display_name"] == "After"

    replicated(ALIAS, "replay resuming")
    # Cache, primary and replica now agree, long before the 3600 s TTL.
    assert APIClient().get(path).json()["display_name"] == "After"
    assert User.objects.using("default").get(pk=user.pk).display_name == "After"
    with routing_scope():
        assert User.objects.get(pk=user.pk).display_name == "After"
    stored = make_node().get(user_cache_key(user.pk), _no_database, ttl=3600)
    assert stored is not None
    assert stored.data["profile"]["display_name"] == "After"


def test_a_fill_racing_a_paused_replica_never_caches_the_replicas_old_row(replica, here, user):
    user.display_name = "Old"
    user.save(update_fields=["display_name"])
    replicated(ALIAS)

    with replay_paused(replica):
        User.objects.filter(pk=user.pk).update(display_name="New")
        assert _name_on_replica(replica, user.pk) == "Old"
        # The cache was empty (no read yet), so this miss is a fill inside a scope that
        # would read the replica: it must take the primary's row.
        with routing_scope():
            value = user_profile_get_cached(user_id=user.pk)
        assert value.data["display_name"] == "New"

    replicated(ALIAS, "replay resuming")
    stored = here.get(user_cache_key(user.pk), _no_database, ttl=3600)
    assert stored is not None
    assert stored.data["profile"]["display_name"] == "New"
