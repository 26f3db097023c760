"""API authentication: no work for what a request does not carry, the same answers."""

from __future__ import annotations

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext
from rest_framework.request import Request
from rest_framework.test import APIRequestFactory

from apps.users.authentication import SessionAuthentication, TokenAuthentication

pytestmark = pytest.mark.django_db

ME_URL = "/api/v1/users/me"


def test_request_without_authorization_header_is_not_token_authenticated():
    django_request = APIRequestFactory().get(ME_URL)

    assert TokenAuthentication().authenticate(Request(django_request)) is None
    # Django builds `request.headers` from all of META on first use (a cached property);
    # the scheme answered from META without it.
    assert "headers" not in vars(django_request)


def test_request_with_a_token_is_authenticated_as_its_user(user, token):
    request = Request(APIRequestFactory().get(ME_URL, HTTP_AUTHORIZATION=f"Token {token}"))

    authenticated = TokenAuthentication().authenticate(request)

    assert authenticated is not None
    assert authenticated[0] == user


def test_anonymous_api_request_reads_no_session_and_varies_on_nothing_but_what_drf_adds(
    api_client, user
):
    with CaptureQueriesContext(connection) as captured:
        response = api_client.get(ME_URL)

    assert response.status_code == 401
    assert captured.captured_queries == []
    assert "Cookie" not in response.get("Vary", "")


def test_request_with_a_session_cookie_is_still_session_authenticated(client, user):
    client.force_login(user)

    response = client.get(ME_URL)

    assert response.status_code == 200
    assert response.json()["id"] == user.pk
    assert "Cookie" in response["Vary"]


def test_session_scheme_without_the_cookie_returns_none_without_loading_the_user():
    django_request = APIRequestFactory().get(ME_URL)
    django_request.user = _Unloadable()  # type: ignore[assignment]

    assert SessionAuthentication().authenticate(Request(django_request)) is None


def test_schema_documents_the_session_scheme_as_a_cookie(client):
    schema = client.get("/api/schema/", HTTP_ACCEPT="application/vnd.oai.openapi+json").json()

    assert schema["components"]["securitySchemes"]["cookieAuth"] == {
        "type": "apiKey",
        "in": "cookie",
        "name": "sessionid",
    }


class _Unloadable:
    """A user that fails the test if anything looks at it."""

    def __getattr__(self, name: str) -> None:
        raise AssertionError(f"the user was loaded ({name})")
