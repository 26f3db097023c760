"""Redis unavailable: the API fails open, login fails closed, and both recover."""

from __future__ import annotations

import contextlib
import time

import pytest
import redis
from django.conf import settings
from prometheus_client import REGISTRY

from apps.ratelimit.backends import redis_backend
from apps.ratelimit.limiter import hit


def login(api_client, username="ada"):
    return api_client.post(
        "/api/v1/auth/token", {"username": username, "password": "wrong"}, format="json"
    )


def errors_of(policy: str) -> float:
    return REGISTRY.get_sample_value("ratelimit_errors_total", {"policy": policy}) or 0.0


def wait_for_the_breaker() -> None:
    """Wait until the limiter's breaker lets checks reach Redis again."""
    assert settings.RATELIMIT_REDIS is not None
    backend = redis_backend(settings.RATELIMIT_REDIS, settings.RATELIMIT_REDIS_TIMEOUT_MS)
    time.sleep(backend.breaker.retry_in)


@pytest.mark.django_db
def test_with_redis_stopped_the_api_passes_login_refuses_and_both_recover(
    private_redis, api_client
):
    before = (errors_of("api"), errors_of("login"))
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
    assert errors_of("api") - before[0] == 1
    assert errors_of("login") - before[1] == 1

    private_redis.start()
    wait_for_the_breaker()

    # Once the breaker's pause is over both use Redis again; the counts the policies
    # kept before the outage are gone with that Redis, so both start afresh.
    assert login(api_client).status_code == 400
    api_up = api_client.get("/api/v1/products")
    assert api_up.status_code == 200
    assert api_up["RateLimit"].startswith('"default";r=')


def test_a_paused_redis_costs_one_short_timeout_then_nothing(private_redis, set_policy, settings):
    settings.RATELIMIT_REDIS_TIMEOUT_MS = 50
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
    wait_for_the_breaker()
    assert not hit("open", "k").store_failed


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
