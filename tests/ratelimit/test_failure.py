"""Redis unavailable: the API fails open, login fails closed, and both recover."""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import time
from collections.abc import Iterator

import pytest
import redis

from apps.ratelimit import metrics
from apps.ratelimit.backends import BREAKER_SECONDS
from apps.ratelimit.limiter import hit
from deploy.local.binaries import find_binary
from deploy.local.processes import free_port, port_open, wait_until


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
        args = [
            find_binary("redis-server"), "--port", str(self.port), "--bind", "127.0.0.1",
            "--save", "", "--appendonly", "no", "--dir", str(self.dir),
        ]  # fmt: skip
        self.popen = subprocess.Popen(args, stdout=subprocess.DEVNULL, start_new_session=True)
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
    server = PrivateRedis(tmp_path)
    server.start()
    settings.RATELIMIT_REDIS_URL = server.url
    try:
        yield server
    finally:
        server.stop()


def login(api_client, username="ada"):
    return api_client.post(
        "/api/v1/auth/token", {"username": username, "password": "wrong"}, format="json"
    )


def eventually(check, timeout: float = 10.0):
    """Poll ``check`` until it returns a truthy value; fail after ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    while True:
        value = check()
        if value or time.monotonic() > deadline:
            return value
        time.sleep(0.05)


@pytest.mark.django_db
def test_with_redis_stopped_the_api_passes_login_refuses_and_both_recover(
    private_redis, api_client
):
    errors_api = metrics.ERRORS.labels("api")
    errors_login = metrics.ERRORS.labels("login")
    before = (errors_api._value.get(), errors_login._value.get())
    assert api_client.get("/api/v1/products").status_code == 200
    assert login(api_client).status_code == 400

    private_redis.stop()
    api_down = api_client.get("/api/v1/products")
    login_down = login(api_client)

    assert api_down.status_code == 200
    # With the store unknown there is no quota to report.
    assert "RateLimit" not in api_down
    assert login_down.status_code == 503
    assert login_down.json() == {
        "detail": "Rate limiting is temporarily unavailable; retry in a moment."
    }
    assert login_down["Retry-After"] == "1"
    assert errors_api._value.get() - before[0] == 1
    assert errors_login._value.get() - before[1] == 1

    private_redis.start()

    # Within the breaker's pause and a margin, both use Redis again; the counts the
    # policies kept before the outage are gone with that Redis, so both start afresh.
    recovered = eventually(lambda: login(api_client).status_code == 400)
    assert recovered
    api_up = api_client.get("/api/v1/products")
    assert api_up.status_code == 200
    assert api_up["RateLimit"].startswith('"default";r=')


def test_a_paused_redis_costs_one_short_timeout_then_nothing(private_redis, set_policy):
    set_policy("open", limit=5, window=60, algorithm="gcra", fail_open=True)
    assert hit("open", "k").allowed
    private_redis.pause()
    try:
        started = time.monotonic()
        first = hit("open", "k")
        first_took = time.monotonic() - started
        during_breaker = [hit("open", "k") for _ in range(20)]
    finally:
        private_redis.resume()

    assert (first.allowed, first.store_failed) == (True, True)
    assert all(d.allowed and d.store_failed for d in during_breaker)
    # The 50 ms socket timeout, with a wide margin for a loaded machine; a limiter
    # without one would hang for as long as Redis stays paused.
    assert first_took < 1.0
    time.sleep(BREAKER_SECONDS)
    assert eventually(lambda: not hit("open", "k").store_failed)


def test_no_limiter_key_is_left_without_a_ttl(private_redis, set_policy):
    set_policy("a", limit=3, window=5, algorithm="gcra")
    set_policy("b", limit=3, window=5, algorithm="sliding_window")
    for _ in range(10):
        for name in ("a", "b"):
            for key in ("x", "y"):
                hit(name, key)
    client = redis.Redis.from_url(private_redis.url)
    with contextlib.closing(client):
        keys = list(client.scan_iter("*"))
        ttls = {key: client.pttl(key) for key in keys}

    assert len(keys) == 4
    assert all(0 < ttl <= 5000 for ttl in ttls.values()), ttls
