"""Checks sent as the request arrives: taken by the view's own check, counted once."""

from __future__ import annotations

from typing import Any

import pytest
from django.http import HttpRequest, HttpResponse
from django.test import RequestFactory
from rest_framework.views import APIView

from apps.ratelimit.decorators import ratelimit
from apps.ratelimit.limiter import PRESTARTED_ATTRIBUTE, decide_request, hit
from apps.ratelimit.middleware import EarlyCheckMiddleware
from apps.ratelimit.routes import _memoized_policies, policies_for_path, view_policies
from apps.ratelimit.throttles import ApiRateThrottle, LoginRateThrottle, PolicyThrottle
from tests.ratelimit.sfv import parse_list


@pytest.fixture
def plain_site(settings, set_policy):
    settings.ROOT_URLCONF = "tests.ratelimit.urls"
    set_policy("plain", limit=5, window=60, scope="ip", algorithm="sliding_window")


def _remaining(response) -> int:
    return int(parse_list(response["RateLimit"])[0][1]["r"])


@pytest.mark.usefixtures("plain_site")
def test_the_view_takes_the_check_sent_as_the_request_arrived():
    seen: dict[str, Any] = {}

    def view(request: HttpRequest) -> HttpResponse:
        # What the rest of the stack hands the view: the check already on its way.
        seen.update(getattr(request, PRESTARTED_ATTRIBUTE, {}))
        seen["decision"] = decide_request("plain", request)
        return HttpResponse("ok")

    middleware = EarlyCheckMiddleware(view)
    request = RequestFactory().get("/plain/", REMOTE_ADDR="10.9.0.1")

    middleware(request)

    assert seen["plain"].key == "ip:10.9.0.1"
    assert seen["decision"].remaining == 4
    # Counted once: the view's check was the early one, not a second count.
    assert hit("plain", "ip:10.9.0.1").remaining == 3


@pytest.mark.usefixtures("plain_site")
def test_decorated_view_counts_each_request_once(client):
    responses = [client.get("/plain/", REMOTE_ADDR="10.9.0.2") for _ in range(6)]

    assert [r.status_code for r in responses] == [200] * 5 + [429]
    assert [_remaining(r) for r in responses[:5]] == [4, 3, 2, 1, 0]


def test_drf_throttle_counts_each_anonymous_request_once(client, product):
    responses = [client.get(f"/api/v1/products/{product.pk}") for _ in range(3)]

    assert [r.status_code for r in responses] == [200] * 3
    assert [_remaining(r) for r in responses] == [99, 98, 97]


def test_request_with_credentials_is_checked_when_the_view_asks(client, user, token):
    seen: list[bool] = []

    def view(request: HttpRequest) -> HttpResponse:
        seen.append(PRESTARTED_ATTRIBUTE in request.__dict__)
        return HttpResponse("ok")

    middleware = EarlyCheckMiddleware(view)
    middleware(RequestFactory().get("/api/v1/users/me", HTTP_AUTHORIZATION=f"Token {token}"))
    response = client.get("/api/v1/users/me", HTTP_AUTHORIZATION=f"Token {token}")

    assert seen == [False]
    assert response.status_code == 200
    assert _remaining(response) == 99


def test_a_view_that_refuses_before_asking_still_reports_the_count(client, db):
    first = client.get("/api/v1/users/me")
    second = client.get("/api/v1/users/me")
    # The connection stays in step: the next check gets its own answer.
    third = client.get("/api/v1/products")

    assert [first.status_code, second.status_code] == [401, 401]
    assert [_remaining(first), _remaining(second), _remaining(third)] == [99, 98, 97]


def test_an_unread_answer_is_read_even_when_the_stack_raises(plain_site):
    def view(request: HttpRequest) -> HttpResponse:
        raise RuntimeError("boom")

    with pytest.raises(RuntimeError):
        EarlyCheckMiddleware(view)(RequestFactory().get("/plain/", REMOTE_ADDR="10.9.0.3"))

    assert hit("plain", "ip:10.9.0.3").remaining == 3


def test_views_declare_their_policies():
    @ratelimit("outer")
    @ratelimit("inner")
    def decorated(request: HttpRequest) -> HttpResponse:
        return HttpResponse()

    class Throttled(APIView):
        throttle_classes = [ApiRateThrottle, LoginRateThrottle]

    class ChoosesPerRequest(Throttled):
        def get_throttles(self) -> list[Any]:
            return []

    class Foreign(PolicyThrottle):
        policy_name = "foreign"

    assert set(view_policies(decorated)) == {"outer", "inner"}
    assert view_policies(Throttled.as_view()) == ("api", "login")
    assert view_policies(Throttled.as_view(throttle_classes=[Foreign])) == ("foreign",)
    assert view_policies(ChoosesPerRequest.as_view()) == ()
    assert view_policies(lambda request: HttpResponse()) == ()


def test_paths_resolve_to_their_views_policies():
    assert policies_for_path(None, "/api/v1/users/1") == ("api",)
    assert policies_for_path(None, "/api/v1/auth/token") == ("login",)
    assert policies_for_path(None, "/healthz") == ()
    assert policies_for_path(None, "/no/such/path") == ()


def test_long_paths_resolve_without_being_kept():
    before = _memoized_policies.cache_info().currsize

    assert policies_for_path(None, "/api/v1/users/" + "1" * 200) == ("api",)
    assert _memoized_policies.cache_info().currsize == before
    assert policies_for_path(None, "/api/v1/users/" + "9" * 20) == ("api",)
    assert _memoized_policies.cache_info().currsize == before + 1
