"""The public profile's fast path answers exactly as the view would, and only when it may."""

from __future__ import annotations

import json
import logging
import time
from typing import Any, cast

import pytest
from django.conf import settings as django_settings
from django.test import Client
from prometheus_client import REGISTRY

from apps.core.cache import TieredCache, use_tiered_cache
from apps.users.fastpath import FAST_PATH_MIDDLEWARE
from apps.users.models import User
from apps.users.services import user_update_profile
from tests.core.cache.nodes import TEST_CONFIG
from tests.factories import UserFactory

pytestmark = pytest.mark.django_db(transaction=True)

# Header fields whose value differs between any two responses.
PER_REQUEST = {"X-Request-ID", "RateLimit"}


@pytest.fixture
def user() -> User:
    return cast(User, UserFactory(display_name="Ada"))


def _slow_client(settings: Any) -> Client:
    """Return a client of a stack without the fast path (a new client loads the setting)."""
    settings.MIDDLEWARE = [m for m in django_settings.MIDDLEWARE if m != FAST_PATH_MIDDLEWARE]
    return Client()


def _answered_fast(response: Any) -> bool:
    # The authentication middleware behind the fast path never ran for a fast answer.
    return "user" not in response.wsgi_request.__dict__


def _fields(response: Any) -> dict[str, str]:
    return {k: v for k, v in response.headers.items() if k not in PER_REQUEST}


def _remaining(response: Any) -> int:
    return int(response["RateLimit"].split(";r=")[1].split(";")[0])


def test_an_l1_hit_is_answered_fast_with_the_views_status_body_and_fields(node, user, settings):
    path = f"/api/v1/users/{user.pk}"
    first = Client().get(path)  # the view fills L1
    fast = Client().get(path)
    slow = _slow_client(settings).get(path)

    assert not _answered_fast(first)
    assert _answered_fast(fast)
    assert not _answered_fast(slow)
    assert fast.status_code == slow.status_code == 200
    assert fast.content == slow.content
    assert json.loads(fast.content)["display_name"] == "Ada"
    assert _fields(fast) == _fields(slow)
    assert {"ETag", "Cache-Control", "RateLimit-Policy", "X-Frame-Options", "Allow"} <= set(
        fast.headers
    )


def test_if_none_match_gets_the_views_304_from_the_fast_path(node, user, settings):
    path = f"/api/v1/users/{user.pk}"
    etag = Client().get(path)["ETag"]

    fast = Client().get(path, HTTP_IF_NONE_MATCH=etag)
    slow = _slow_client(settings).get(path, HTTP_IF_NONE_MATCH=f'W/{etag}, "other"')

    assert _answered_fast(fast)
    assert fast.status_code == slow.status_code == 304
    assert fast.content == slow.content == b""
    assert _fields(fast) == _fields(slow)
    assert "Content-Type" not in fast.headers


def test_a_committed_update_is_served_at_once_despite_the_fast_path(node, user):
    path = f"/api/v1/users/{user.pk}"
    client = Client()
    client.get(path)
    assert _answered_fast(client.get(path))

    user_update_profile(user=user, display_name="Grace")
    # The view refills L1; this process's own invalidation message may drop that copy
    # once more when it arrives. Every answer is fresh, and soon one is fast again.
    answers = [client.get(path) for _ in range(3)]
    deadline = time.monotonic() + 5
    while not _answered_fast(answers[-1]) and time.monotonic() < deadline:
        time.sleep(0.05)
        answers.append(client.get(path))

    assert {json.loads(a.content)["display_name"] for a in answers} == {"Grace"}
    assert _answered_fast(answers[-1])


def test_each_request_is_counted_once_whichever_path_answers_it(node, user):
    client = Client()
    ok = f"/api/v1/users/{user.pk}"
    responses = [
        client.get(ok),  # L1 miss: the view, with the fast path's decision
        client.get(ok),  # L1 hit: the fast path
        client.get("/api/v1/users/999999999"),  # unknown: the view's 404
        client.get(ok, HTTP_AUTHORIZATION="Token nope"),  # not anonymous: the view's 401
        client.get(ok),
    ]

    assert [r.status_code for r in responses] == [200, 200, 404, 401, 200]
    assert [_answered_fast(r) for r in responses] == [False, True, False, False, True]
    # A failed authentication is answered before any throttle, so it is not counted.
    assert "RateLimit" not in responses[3].headers
    remaining = [_remaining(r) for r in responses if "RateLimit" in r.headers]
    assert remaining == list(range(remaining[0], remaining[0] - 4, -1))
    assert json.loads(responses[2].content) == {"detail": "User not found."}


def test_a_refused_request_gets_the_views_429_and_is_counted_once(node, user, settings):
    settings.RATELIMIT_OVERRIDES = {"api": (2, 60)}
    settings.RATELIMIT_KEY_PREFIX = f"rl-fastpath-{user.pk}"
    path = f"/api/v1/users/{user.pk}"
    client = Client()

    statuses = [client.get(path).status_code for _ in range(2)]
    refused = client.get(path)
    slow_refused = _slow_client(settings).get(path)

    assert statuses == [200, 200]
    assert refused.status_code == slow_refused.status_code == 429
    assert refused.content == slow_refused.content
    assert int(refused["Retry-After"]) >= 1
    assert _fields(refused).keys() == _fields(slow_refused).keys()
    assert refused["RateLimit"].startswith('"default";r=0;')


@pytest.mark.parametrize(
    ("extra", "status"),
    [
        ({"HTTP_ACCEPT": "text/html"}, 406),
        ({"HTTP_ACCEPT": "application/json; indent=2"}, 200),
        ({"QUERY_STRING": "format=json"}, 200),
        ({"HTTP_COOKIE": f"{django_settings.SESSION_COOKIE_NAME}=nope"}, 200),
        ({"HTTP_HOST": "evil.example"}, 400),
    ],
)
def test_requests_the_fast_path_must_not_answer_go_to_the_view(node, user, extra, status):
    path = f"/api/v1/users/{user.pk}"
    Client().get(path)

    response = Client().generic("GET", path, **extra)

    assert response.status_code == status
    # Judged ineligible up front: nothing decided for the view to take over.
    assert "ratelimit_predecided" not in response.wsgi_request.__dict__
    if status != 400:  # A bad host is refused before the authentication middleware.
        assert not _answered_fast(response)


def test_a_fast_answer_is_counted_and_logged_under_its_route(node, user, caplog):
    path = f"/api/v1/users/{user.pk}"
    labels = {"method": "GET", "endpoint": "/api/v1/users/{id}", "status": "200"}
    client = Client()
    client.get(path)
    before = REGISTRY.get_sample_value("http_requests_total", labels) or 0.0

    with caplog.at_level(logging.INFO, logger="highscale.access"):
        response = client.get(path, HTTP_X_REQUEST_ID="fast-path-123")

    assert _answered_fast(response)
    assert response["X-Request-ID"] == "fast-path-123"
    assert REGISTRY.get_sample_value("http_requests_total", labels) == before + 1
    (record,) = [
        r
        for r in caplog.records
        if r.name == "highscale.access" and r.__dict__.get("request_id") == "fast-path-123"
    ]
    assert record.getMessage() == f"GET {path} 200"
    assert record.__dict__["endpoint"] == "/api/v1/users/{id}"
    assert record.__dict__["status"] == 200


def test_an_l1_that_cannot_be_trusted_is_not_used(make_redisless_node, user):
    path = f"/api/v1/users/{user.pk}"
    client = Client()
    client.get(path)

    response = client.get(path)

    assert response.status_code == 200
    assert not _answered_fast(response)


@pytest.fixture
def make_redisless_node():
    """Install a tiered cache without Redis: no subscription, so L1 is never consulted."""
    cache = TieredCache(None, TEST_CONFIG)
    with use_tiered_cache(cache):
        yield cache
    cache.close()
