"""Revocation and expiry across processes: four gunicorn workers refuse a dead token at once."""

from __future__ import annotations

import json
import time
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from typing import cast

import pytest
from django.conf import settings
from django.utils import timezone

from apps.users.models import AuthToken, User
from apps.users.services import token_create
from apps.users.tokens import token_digest
from tests.factories import PASSWORD, UserFactory
from tests.gunicorn import Gunicorn, serving

pytestmark = pytest.mark.django_db(transaction=True)

ME_URL = "/api/v1/users/me"
# Enough requests from enough clients at once that every worker answers some.
REQUESTS, CLIENTS = 48, 12


def answers(server: Gunicorn, token: str) -> Counter[tuple[int, str]]:
    """GET the own profile ``REQUESTS`` times at once; count (status, detail) pairs."""
    headers = {"Authorization": f"Token {token}"}

    def one(_: int) -> tuple[int, str]:
        status, _fields, body = server.request("GET", ME_URL, headers)
        return status, "" if status == 200 else json.loads(body)["detail"]

    with ThreadPoolExecutor(CLIENTS) as pool:
        return Counter(pool.map(one, range(REQUESTS)))


def test_a_revoked_token_is_refused_by_every_worker_from_the_next_request(tmp_path):
    user = cast(User, UserFactory())
    revoked, kept = (token_create(username=user.username, password=PASSWORD) for _ in range(2))
    with serving(tmp_path, _redis_env()) as server:
        assert answers(server, revoked) == {(200, ""): REQUESTS}

        headers = {"Authorization": f"Token {revoked}"}
        status, _, _ = server.request("DELETE", "/api/v1/auth/token", headers)

        assert status == 204
        assert answers(server, revoked) == {(401, "Invalid token."): REQUESTS}
        assert answers(server, kept) == {(200, ""): REQUESTS}


def test_a_password_change_through_the_orm_is_seen_by_every_worker_at_once(tmp_path):
    user = cast(User, UserFactory())
    old = token_create(username=user.username, password=PASSWORD)
    with serving(tmp_path, _redis_env()) as server:
        assert answers(server, old) == {(200, ""): REQUESTS}

        user.set_password("a-new-long-passphrase")
        user.save()

        assert answers(server, old) == {(401, "Invalid token."): REQUESTS}
        # Logged in here: the suite's fast hasher is not one the server accepts.
        new = token_create(username=user.username, password="a-new-long-passphrase")
        assert answers(server, new) == {(200, ""): REQUESTS}


def test_an_expired_token_is_refused_by_every_worker_once_its_ttl_passes(tmp_path, settings):
    user = cast(User, UserFactory())
    with serving(tmp_path, _redis_env()) as server:
        # Short enough to wait out, long enough for the first round to finish inside it.
        # The expiry is written at login; the servers only compare it with their clock.
        settings.AUTH_TOKEN_TTL_SECONDS = 6
        token = token_create(username=user.username, password=PASSWORD)
        expires_at = AuthToken.objects.get(digest=token_digest(token)).expires_at
        assert answers(server, token) == {(200, ""): REQUESTS}

        # The real clock passes the expiry that the server wrote; nothing is mocked.
        time.sleep(max(0.0, (expires_at - timezone.now()).total_seconds()) + 0.1)

        assert answers(server, token) == {(401, "Token has expired; log in again."): REQUESTS}


def _redis_env() -> dict[str, str]:
    """Return the suite's Redis settings, so the workers share the test's limiter state."""
    return {
        "REDIS_URL": settings.REDIS_URL,
        "RATELIMIT_REDIS_URL": settings.RATELIMIT_REDIS_URL,
        "RATELIMIT_KEY_PREFIX": settings.RATELIMIT_KEY_PREFIX,
    }
