"""The decorator limits a plain Django view, with the same fields and JSON 429."""

from __future__ import annotations

import pytest

from tests.ratelimit.sfv import parse_list


@pytest.fixture
def plain_site(settings, set_policy):
    settings.ROOT_URLCONF = "tests.ratelimit.urls"
    set_policy("plain", limit=2, window=30, scope="ip", algorithm="gcra")


@pytest.mark.usefixtures("plain_site")
def test_decorated_view_is_limited_with_the_rate_limit_fields(client):
    responses = [client.get("/plain/") for _ in range(3)]

    assert [r.status_code for r in responses] == [200, 200, 429]
    assert responses[0].json() == {"ok": True}
    assert parse_list(responses[0]["RateLimit-Policy"]) == [("plain", {"q": 2, "w": 30})]
    assert [parse_list(r["RateLimit"])[0][1]["r"] for r in responses] == [1, 0, 0]
    refused = responses[2]
    assert refused["Content-Type"] == "application/json"
    assert refused.json()["detail"].startswith("Request was throttled.")
    # GCRA 2 per 30 s: the next slot frees 15 s after the burst.
    assert int(refused["Retry-After"]) == 15
    assert parse_list(refused["RateLimit"])[0][1]["t"] == 15


@pytest.mark.usefixtures("plain_site")
def test_a_request_without_a_session_is_counted_by_address_without_reading_the_session(
    client,
):
    response = client.get("/plain/", REMOTE_ADDR="203.0.113.9")
    other_address = client.get("/plain/", REMOTE_ADDR="203.0.113.10")

    assert parse_list(response["RateLimit"])[0][1]["r"] == 1
    assert parse_list(other_address["RateLimit"])[0][1]["r"] == 1
    # Asking for the user would have read the session, which varies the response.
    assert "Cookie" not in response.get("Vary", "")
