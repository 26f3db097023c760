"""Failed token logins are counted under a fixed label and logged without the password."""

from __future__ import annotations

import logging

import pytest
from prometheus_client import REGISTRY

from tests.factories import PASSWORD

pytestmark = pytest.mark.django_db

TOKEN_URL = "/api/v1/auth/token"


def failures(endpoint: str) -> float:
    value = REGISTRY.get_sample_value("auth_login_failures_total", {"endpoint": endpoint})
    return value or 0.0


def test_a_failed_token_login_is_counted_and_logged_without_the_password(api_client, user, caplog):
    before = {endpoint: failures(endpoint) for endpoint in ("api", "admin")}
    caplog.set_level(logging.INFO, logger="apps.users.login_failures")

    wrong = {"username": user.username.upper(), "password": "guess-5d1c0a"}
    refused = api_client.post(TOKEN_URL, wrong, format="json", REMOTE_ADDR="198.51.100.4")
    admitted = api_client.post(
        TOKEN_URL, {"username": user.username, "password": PASSWORD}, format="json"
    )
    malformed = api_client.post(TOKEN_URL, {"username": user.username}, format="json")

    assert (refused.status_code, admitted.status_code, malformed.status_code) == (400, 200, 400)
    assert failures("api") == before["api"] + 1
    assert failures("admin") == before["admin"]
    assert [r.getMessage() for r in caplog.records if r.name == "apps.users.login_failures"] == [
        f"Failed api login for username '{user.username}' from 198.51.100.4"
    ]


def test_the_failure_counter_has_only_the_endpoint_label():
    family = next(m for m in REGISTRY.collect() if m.name == "auth_login_failures")

    assert {tuple(sorted(s.labels)) for s in family.samples} == {("endpoint",)}
    assert {s.labels["endpoint"] for s in family.samples} == {"admin", "api"}
