"""Fixtures of the rate-limit tests: the real policies and a fresh key namespace per test."""

from __future__ import annotations

import os
import signal
import subprocess
import uuid
from collections.abc import Callable, Iterator
from typing import Any

import pytest
import redis
from django.conf import settings as django_settings

from apps.core.redis_topology import SingleRedis
from apps.ratelimit.selectors import override_snapshot_clear
from deploy.local import redis as redis_server
from deploy.local.processes import free_port, port_open, wait_until

# The contract's policies, as config/settings.py declares them.
REAL_POLICIES = {name: dict(config) for name, config in django_settings.RATELIMIT_POLICIES.items()}


@pytest.fixture(autouse=True)
def _real_policies(settings: Any) -> Iterator[None]:
    """Undo the suite's generous overrides and count under a prefix of this test's own."""
    settings.RATELIMIT_OVERRIDES = {}
    settings.RATELIMIT_POLICIES = {name: dict(config) for name, config in REAL_POLICIES.items()}
    settings.RATELIMIT_KEY_PREFIX = f"rltest:{uuid.uuid4().hex}"
    # A loaded test machine can keep Redis from answering within the production 50 ms;
    # the tests of the timeout itself set it back.
    settings.RATELIMIT_REDIS_TIMEOUT_MS = 1000
    override_snapshot_clear()
    yield
    override_snapshot_clear()


@pytest.fixture
def set_policy(settings: Any) -> Callable[..., None]:
    """Return a function that declares (or replaces) one policy for this test."""

    def declare(name: str, **config: Any) -> None:
        settings.RATELIMIT_POLICIES = {**settings.RATELIMIT_POLICIES, name: config}

    return declare


@pytest.fixture
def redis_client() -> Iterator[redis.Redis]:
    """Return a client of the suite's Redis, the one the limiter counts in."""
    client = redis.Redis.from_url(django_settings.RATELIMIT_REDIS_URL)
    yield client
    client.close()


@pytest.fixture(params=["redis", "memory"])
def backend(request: pytest.FixtureRequest, settings: Any) -> str:
    """Run the test on the Redis store and on the in-process one."""
    if request.param == "memory":
        settings.RATELIMIT_REDIS = None
    return str(request.param)


class PrivateRedis:
    """A Redis of this test's own, which it may stop, pause and start again."""

    def __init__(self, tmp_path) -> None:
        self.port = free_port()
        self.dir = tmp_path
        self.popen: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def start(self) -> None:
        self.popen = subprocess.Popen(
            redis_server.command(self.port, self.dir),
            stdout=subprocess.DEVNULL,
            start_new_session=True,
        )
        wait_until(lambda: port_open("127.0.0.1", self.port), 30, "private redis")

    def stop(self) -> None:
        if self.popen is not None and self.popen.poll() is None:
            os.kill(self.popen.pid, signal.SIGCONT)
            self.popen.terminate()
            self.popen.wait(10)

    def pause(self) -> None:
        assert self.popen is not None
        os.kill(self.popen.pid, signal.SIGSTOP)

    def resume(self) -> None:
        assert self.popen is not None
        os.kill(self.popen.pid, signal.SIGCONT)


@pytest.fixture
def private_redis(tmp_path, settings) -> Iterator[PrivateRedis]:
    """Count in a Redis of this test's own, which it may stop, pause and restart."""
    server = PrivateRedis(tmp_path)
    server.start()
    settings.RATELIMIT_REDIS = SingleRedis(server.url)
    try:
        yield server
    finally:
        server.stop()
