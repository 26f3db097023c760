"""Invalidations Redis missed: recorded with the write, replayed once Redis is back.

Against real servers: gunicorn with four workers, a private Redis that the test pauses
(SIGSTOP) or restarts with its snapshot, and the test database.
"""

from __future__ import annotations

import json
import os
import signal
import time
from collections.abc import Iterator
from contextlib import contextmanager
from typing import cast

import pytest
from django.conf import settings
from redis import Redis, RedisError

from apps.core.cache.models import PendingInvalidation
from apps.users.models import User
from apps.users.services import token_create
from deploy.local.processes import wait_until
from tests.factories import PASSWORD, UserFactory
from tests.gunicorn import Gunicorn, display_names, serving

pytestmark = pytest.mark.django_db(transaction=True)

# How long the replay may take once Redis answers: generous for a loaded machine; it
# happens within a ping of a worker's listener (a fraction of a second).
REPLAY_DEADLINE_SECONDS = 15.0


@contextmanager
def _serve(tmp_path, redis_url: str) -> Iterator[Gunicorn]:
    env = {
        "REDIS_URL": redis_url,
        # The limiter stays on the suite's Redis: only the cache's Redis fails here.
        "RATELIMIT_REDIS_URL": settings.RATELIMIT_REDIS_URL,
        "RATELIMIT_KEY_PREFIX": settings.RATELIMIT_KEY_PREFIX,
    }
    with serving(tmp_path, env) as server:
        yield server


def _rename(server: Gunicorn, user: User, name: str) -> None:
    token = token_create(username=user.username, password=PASSWORD)
    status, _, body = server.request(
        "PATCH", "/api/v1/users/me", {"Authorization": f"Token {token}"}, {"display_name": name}
    )
    assert status == 200, body
    assert json.loads(body)["display_name"] == name


def _wait_for_the_stale_entry_to_go(redis: Redis, key: str, stale: bytes) -> bool:
    """Wait for the replayed drop of ``key`` (its message, or its effect); return whether seen.

    Returns at the deadline without failing, so that a missing replay shows as the
    stale reads it lets through.
    """
    pubsub = redis.pubsub()
    deadline = time.monotonic() + REPLAY_DEADLINE_SECONDS
    try:
        while time.monotonic() < deadline:
            try:
                if not pubsub.subscribed:
                    pubsub.subscribe(settings.CACHE_INVALIDATION_CHANNEL)
                if redis.get(key) != stale and not PendingInvalidation.objects.exists():
                    return True
                pubsub.get_message(timeout=0.1)  # wakes on the replay's publish
            except RedisError:
                time.sleep(0.05)  # Redis still loading or not yet listening
        return False
    finally:
        pubsub.close()


def _cached(server: Gunicorn, redis: Redis, user: User) -> tuple[str, bytes]:
    assert display_names(server, user.pk) == ["Before"] * 20
    key = f"hs:c:user:{user.pk}"
    stale = redis.get(key)
    assert stale is not None
    assert b'"Before"' in stale
    return key, cast(bytes, stale)


def test_a_profile_renamed_while_redis_is_paused_is_new_on_every_worker_after_it_resumes(
    private_servers, tmp_path
):
    url = private_servers.start_redis()
    pid = private_servers.processes[-1].popen.pid
    user = cast(User, UserFactory(display_name="Before"))
    redis = Redis.from_url(url, socket_timeout=5)
    with _serve(tmp_path, url) as server:
        key, stale = _cached(server, redis, user)

        os.kill(pid, signal.SIGSTOP)  # Redis hangs: connections open, no answers
        try:
            _rename(server, user, "After")
            # The delete did not reach Redis: the record of it is what is left.
            assert PendingInvalidation.objects.filter(kind="user", idents=[user.pk]).exists()
        finally:
            os.kill(pid, signal.SIGCONT)

        replayed = _wait_for_the_stale_entry_to_go(redis, key, stale)
        # A worker that saw no error itself may hold the old name in its L1 until the
        # replay's broadcast or, at the latest, the L1 lifetime ends.
        wait_until(
            lambda: display_names(server, user.pk) == ["After"] * 20,
            settings.CACHE_L1_TTL_SECONDS + 5,
            "every worker serving the new name",
        )
        assert replayed


def test_a_profile_renamed_while_redis_is_down_is_new_after_it_restarts_with_its_snapshot(
    private_servers, tmp_path
):
    url = private_servers.start_redis(save="3600 1")
    user = cast(User, UserFactory(display_name="Before"))
    redis = Redis.from_url(url, socket_timeout=5)
    with _serve(tmp_path, url) as server:
        key, stale = _cached(server, redis, user)

        private_servers.stop_server("redis")  # a clean shutdown saves the snapshot
        _rename(server, user, "After")
        snapshot = (private_servers.root / "redis" / "dump.rdb").read_bytes()
        assert key.encode() in snapshot  # the value is compressed; the short key is not
        private_servers.restart_redis("redis")  # back with the stale entry loaded

        replayed = _wait_for_the_stale_entry_to_go(redis, key, stale)
        assert display_names(server, user.pk) == ["After"] * 20
        assert replayed
