"""Behaviour of LastActiveMiddleware: last_active is written at most once per interval."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.utils import timezone

from apps.users.models import User

ME_URL = "/api/v1/users/me"

pytestmark = pytest.mark.django_db


@pytest.fixture(autouse=True)
def _interval(settings: Any) -> None:
    settings.USER_LAST_ACTIVE_INTERVAL_SECONDS = 300


def _user_updates(captured: CaptureQueriesContext) -> list[str]:
    return [
        q["sql"]
        for q in captured.captured_queries
        if q["sql"].startswith("UPDATE") and '"users_user"' in q["sql"]
    ]


def _last_active(user: User) -> Any:
    return User.objects.values_list("last_active", flat=True).get(pk=user.pk)


def test_first_authenticated_request_sets_last_active(auth_client, user):
    assert _last_active(user) is None
    before = timezone.now()

    response = auth_client.get(ME_URL)

    assert response.status_code == 200
    stored = _last_active(user)
    assert stored is not None
    assert before <= stored <= timezone.now()


def test_request_within_the_interval_does_not_write_last_active(auth_client, user):
    seen = timezone.now() - timedelta(seconds=120)
    User.objects.filter(pk=user.pk).update(last_active=seen)

    with CaptureQueriesContext(connection) as captured:
        response = auth_client.get(ME_URL)

    assert response.status_code == 200
    assert _user_updates(captured) == []
    assert _last_active(user) == seen


def test_second_request_right_after_the_first_does_not_write_again(auth_client, user):
    auth_client.get(ME_URL)
    first = _last_active(user)
    assert first is not None

    with CaptureQueriesContext(connection) as captured:
        auth_client.get(ME_URL)

    assert _user_updates(captured) == []
    assert _last_active(user) == first


def test_request_after_the_interval_refreshes_last_active(auth_client, user):
    stale = timezone.now() - timedelta(seconds=301)
    User.objects.filter(pk=user.pk).update(last_active=stale)
    before = timezone.now()

    response = auth_client.get(ME_URL)

    assert response.status_code == 200
    stored = _last_active(user)
    assert stored is not None
    assert stored >= before


def test_authenticated_request_answered_with_4xx_still_counts_as_activity(auth_client, user):
    response = auth_client.get("/api/v1/users/987654321")

    assert response.status_code == 404
    assert _last_active(user) is not None


def test_session_authenticated_request_sets_last_active(client, user):
    client.force_login(user)

    response = client.get(ME_URL)

    assert response.status_code == 200
    assert _last_active(user) is not None


def test_anonymous_requests_write_nothing(api_client, user):
    with CaptureQueriesContext(connection) as captured:
        profile = api_client.get(f"/api/v1/users/{user.pk}")
        health = api_client.get("/healthz")

    assert profile.status_code == 200
    assert health.status_code == 200
    assert _user_updates(captured) == []
    assert _last_active(user) is None


def test_request_with_an_invalid_token_writes_nothing(api_client, user):
    with CaptureQueriesContext(connection) as captured:
        response = api_client.get(ME_URL, HTTP_AUTHORIZATION="Token invalid-token-value")

    assert response.status_code == 401
    assert _user_updates(captured) == []
    assert _last_active(user) is None


def test_request_without_a_session_cookie_neither_reads_the_session_nor_writes(client, user):
    with CaptureQueriesContext(connection) as captured:
        response = client.get("/healthz")

    assert response.status_code == 200
    # Loading the user would read the session store and mark the response Vary: Cookie.
    assert captured.captured_queries == []
    assert not response.has_header("Vary")
    assert _last_active(user) is None


def test_session_user_counts_as_active_where_no_view_asked_who_it_is(client, user):
    client.force_login(user)

    response = client.get("/healthz")

    assert response.status_code == 200
    assert _last_active(user) is not None
