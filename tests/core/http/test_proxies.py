"""Absolute URLs carry the client's host, port and scheme, told only by trusted proxies."""

from __future__ import annotations

from typing import Any

import pytest
from rest_framework.test import APIClient

from apps.orders.models import Product

NGINX = "10.0.0.1"
STRANGER = "203.0.113.9"


@pytest.fixture
def two_products(db: None, settings: Any) -> None:
    settings.ALLOWED_HOSTS = ["127.0.0.1", "shop.example", "evil.example"]
    settings.RATELIMIT_TRUSTED_PROXIES = [NGINX]
    Product.objects.create(sku="A", name="A", price=1, stock=1)
    Product.objects.create(sku="B", name="B", price=1, stock=1)


def _next_link(**meta: Any) -> str:
    response = APIClient().get("/api/v1/products", {"limit": 1}, **meta)
    assert response.status_code == 200
    link: str = response.json()["next"]
    return link


def test_next_link_keeps_the_port_of_the_host_the_client_asked_for(two_products: None) -> None:
    link = _next_link(REMOTE_ADDR=NGINX, HTTP_HOST="127.0.0.1:8080")

    assert link.startswith("http://127.0.0.1:8080/api/v1/products?cursor=")


def test_next_link_follows_the_forwarded_host_and_scheme_of_a_trusted_proxy(
    two_products: None, settings: Any
) -> None:
    settings.SECURE_PROXY_SSL_HEADER = ("HTTP_X_FORWARDED_PROTO", "https")

    link = _next_link(
        REMOTE_ADDR=NGINX,
        HTTP_HOST="127.0.0.1:8001",
        HTTP_X_FORWARDED_HOST="shop.example:8443",
        HTTP_X_FORWARDED_PROTO="https",
    )

    assert link.startswith("https://shop.example:8443/api/v1/products?cursor=")


def test_forwarded_host_and_scheme_from_any_other_peer_are_ignored(
    two_products: None, settings: Any
) -> None:
    settings.SECURE_PROXY_SSL_HEADER = ("HTTP_X_FORWARDED_PROTO", "https")

    link = _next_link(
        REMOTE_ADDR=STRANGER,
        HTTP_HOST="127.0.0.1:8001",
        HTTP_X_FORWARDED_HOST="evil.example:1",
        HTTP_X_FORWARDED_PORT="1",
        HTTP_X_FORWARDED_PROTO="https",
    )

    assert link.startswith("http://127.0.0.1:8001/api/v1/products?cursor=")


def test_without_trusted_proxies_no_forwarded_host_is_believed(
    two_products: None, settings: Any
) -> None:
    settings.RATELIMIT_TRUSTED_PROXIES = []

    link = _next_link(REMOTE_ADDR="127.0.0.1", HTTP_HOST="127.0.0.1:8001",
                      HTTP_X_FORWARDED_HOST="evil.example")  # fmt: skip

    assert link.startswith("http://127.0.0.1:8001/")
