"""Client identity: X-Forwarded-For counts only when a trusted proxy sent it."""

from __future__ import annotations

import pytest
from django.test import RequestFactory

from apps.ratelimit.identity import client_ip, scope_key

FORWARDED = "198.51.100.7"


def request_from(remote: str, forwarded: str | None = None):
    request = RequestFactory().get("/", REMOTE_ADDR=remote)
    if forwarded is not None:
        request.META["HTTP_X_FORWARDED_FOR"] = forwarded
    return request


def test_forwarded_for_from_an_untrusted_address_is_ignored(settings):
    settings.RATELIMIT_TRUSTED_PROXIES = ["10.0.0.1"]

    assert client_ip(request_from("203.0.113.9", FORWARDED)) == "203.0.113.9"


def test_forwarded_for_is_ignored_when_no_proxy_is_trusted(settings):
    settings.RATELIMIT_TRUSTED_PROXIES = []

    assert client_ip(request_from("127.0.0.1", FORWARDED)) == "127.0.0.1"


def test_forwarded_for_from_a_trusted_proxy_names_the_client(settings):
    settings.RATELIMIT_TRUSTED_PROXIES = ["10.0.0.0/8"]

    assert client_ip(request_from("10.0.0.1", FORWARDED)) == FORWARDED


def test_a_client_cannot_prepend_its_way_past_the_trusted_chain(settings):
    settings.RATELIMIT_TRUSTED_PROXIES = ["10.0.0.1", "10.0.0.2"]
    # The client sent "1.1.1.1"; the outer proxy saw it come from 198.51.100.7.
    chain = f"1.1.1.1, {FORWARDED}, 10.0.0.2"

    assert client_ip(request_from("10.0.0.1", chain)) == FORWARDED


@pytest.mark.parametrize("chain", ["not-an-ip", "", "  ,  "])
def test_a_garbled_chain_falls_back_to_the_proxy_address(settings, chain):
    settings.RATELIMIT_TRUSTED_PROXIES = ["10.0.0.1"]

    assert client_ip(request_from("10.0.0.1", chain)) == "10.0.0.1"


def test_ipv6_proxies_and_clients_are_understood(settings):
    settings.RATELIMIT_TRUSTED_PROXIES = ["::1"]

    assert client_ip(request_from("::1", "2001:db8::5")) == "2001:db8::5"


@pytest.mark.django_db
def test_spoofed_forwarded_for_does_not_escape_the_api_limit(api_client, settings, set_policy):
    set_policy("api", limit=2, window=60, algorithm="sliding_window", header_name="default")
    settings.RATELIMIT_TRUSTED_PROXIES = ["10.0.0.1"]
    spoofed = [
        api_client.get(
            "/api/v1/products", HTTP_X_FORWARDED_FOR=f"192.0.2.{n}", REMOTE_ADDR="203.0.113.9"
        )
        for n in range(3)
    ]
    via_proxy = [
        api_client.get(
            "/api/v1/products", HTTP_X_FORWARDED_FOR=f"192.0.2.{n}", REMOTE_ADDR="10.0.0.1"
        )
        for n in range(3)
    ]

    assert [r.status_code for r in spoofed] == [200, 200, 429]
    # Through the proxy each forwarded address is its own client.
    assert [r.status_code for r in via_proxy] == [200, 200, 200]


def test_scope_keys_name_what_they_count(settings):
    settings.RATELIMIT_TRUSTED_PROXIES = []
    request = request_from("203.0.113.9")
    request.META["HTTP_AUTHORIZATION"] = "Token abc"

    assert scope_key("ip", request) == ("ip:203.0.113.9", None)
    assert scope_key("user_or_ip", request) == ("ip:203.0.113.9", None)
    assert scope_key("token", request)[0].startswith("token:")
    assert scope_key("token", request)[0] != scope_key("token", request_from("203.0.113.9"))[0]
    assert scope_key("tests.ratelimit.test_identity.tenant_key", request) == (
        "custom:tenant-203.0.113.9",
        None,
    )


def tenant_key(request) -> str:
    return f"tenant-{request.META['REMOTE_ADDR']}"
