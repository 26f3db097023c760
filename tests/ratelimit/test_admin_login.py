"""The admin login under the ``login`` policy: an HTML 429 past five attempts a minute."""

from __future__ import annotations

import logging
import time
from typing import Any, cast

import pytest
from django.test import Client
from prometheus_client import REGISTRY

from apps.users.models import User
from tests.factories import PASSWORD, UserFactory

pytestmark = pytest.mark.django_db

LOGIN_URL = "/admin/login/?next=/admin/"
WRONG = "not-the-password"


@pytest.fixture
def staff() -> User:
    return cast(User, UserFactory(username="root", is_staff=True, is_superuser=True))


def attempt(client: Client, username: str, password: str, **extra: Any) -> Any:
    return client.post(LOGIN_URL, {"username": username, "password": password}, **extra)


def failures(endpoint: str) -> float:
    value = REGISTRY.get_sample_value("auth_login_failures_total", {"endpoint": endpoint})
    return value or 0.0


def test_twelve_wrong_passwords_are_refused_from_the_sixth_and_so_is_the_right_one(
    client, staff, set_policy
):
    # The contract's 5 per window, over a short window so that the test can outlast it.
    set_policy("login", limit=5, window=4, scope="ip_username", algorithm="sliding_window",
               fail_open=False)  # fmt: skip
    statuses = [attempt(client, "root", WRONG).status_code for _ in range(12)]
    right = attempt(client, "root", PASSWORD)

    assert statuses == [200] * 5 + [429] * 7
    assert right.status_code == 429
    assert "_auth_user_id" not in client.session
    page = right.content.decode()
    retry_after = int(right["Retry-After"])
    assert 1 <= retry_after <= 4
    assert right["Content-Type"] == "text/html; charset=utf-8"
    assert f"Too many login attempts. Retry in {retry_after} s." in page
    assert "no-cache" in right["Cache-Control"]

    # The window passes (no clock is mocked): the right password gets in.
    time.sleep(retry_after)
    admitted = attempt(client, "root", PASSWORD)

    assert admitted.status_code == 302
    assert admitted["Location"] == "/admin/"
    assert client.session["_auth_user_id"] == str(staff.pk)


def test_showing_the_login_form_is_not_an_attempt(client, staff):
    assert [client.get(LOGIN_URL).status_code for _ in range(8)] == [200] * 8

    assert attempt(client, "root", PASSWORD).status_code == 302


def test_the_refusal_carries_the_login_policys_rate_limit_fields(client, staff):
    responses = [attempt(client, "root", WRONG) for _ in range(6)]

    assert responses[0]["RateLimit-Policy"] == '"login";q=5;w=60'
    assert responses[5]["RateLimit"] == '"login";r=0;t=' + responses[5]["Retry-After"]


def test_varying_the_usernames_case_counts_against_one_limit(client, staff):
    names = ["root", "ROOT", "Root", " root", "rOOt"]
    assert [attempt(client, n, WRONG).status_code for n in names] == [200] * 5

    assert attempt(client, "roOT", WRONG).status_code == 429
    assert attempt(client, "root", PASSWORD).status_code == 429


def test_a_spoofed_forwarded_for_from_an_untrusted_peer_changes_nothing(client, staff):
    # No trusted proxy is configured: the header is the client's own say-so.
    statuses = [
        attempt(client, "root", WRONG, HTTP_X_FORWARDED_FOR=f"198.51.100.{n}").status_code
        for n in range(6)
    ]

    assert statuses == [200] * 5 + [429]


def test_a_forwarded_for_from_a_trusted_proxy_names_the_client(client, staff, settings):
    settings.RATELIMIT_TRUSTED_PROXIES = ["127.0.0.1"]
    for _ in range(5):
        attempt(client, "root", WRONG, HTTP_X_FORWARDED_FOR="198.51.100.1")

    assert attempt(client, "root", WRONG, HTTP_X_FORWARDED_FOR="198.51.100.1").status_code == 429
    other = Client()
    assert attempt(other, "root", PASSWORD, HTTP_X_FORWARDED_FOR="198.51.100.2").status_code == 302


def test_a_success_from_another_address_does_not_reset_the_attackers_count(client, staff):
    attacker = {"REMOTE_ADDR": "203.0.113.66"}
    for _ in range(5):
        attempt(client, "root", WRONG, **attacker)

    owner = Client()
    assert attempt(owner, "root", PASSWORD, REMOTE_ADDR="203.0.113.7").status_code == 302

    assert attempt(client, "root", WRONG, **attacker).status_code == 429
    assert attempt(client, "root", PASSWORD, **attacker).status_code == 429


def test_a_failed_admin_login_is_counted_and_logged_without_the_password(client, staff, caplog):
    before = failures("admin")
    caplog.set_level(logging.DEBUG)

    attempt(client, "Root", "hunter2-secret-guess", REMOTE_ADDR="203.0.113.5")
    attempt(client, "root", PASSWORD)

    assert failures("admin") == before + 1
    lines = [r.getMessage() for r in caplog.records if r.name == "apps.users.login_failures"]
    assert lines == ["Failed admin login for username 'root' from 203.0.113.5"]
    assert not any("hunter2-secret-guess" in r.getMessage() for r in caplog.records)


def test_the_admin_login_fails_closed_with_a_503_page_when_the_store_is_down(
    client, staff, private_redis
):
    private_redis.stop()

    response = attempt(client, "root", PASSWORD)

    assert response.status_code == 503
    assert "Logging in is temporarily unavailable." in response.content.decode()
    assert "_auth_user_id" not in client.session
