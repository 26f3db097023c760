"""The catalogue's answers tell the edge how long it may keep them, and errors are not kept."""

from __future__ import annotations

from typing import Any

from rest_framework.test import APIClient

from apps.orders.models import Product


def test_product_list_and_detail_may_be_kept_by_the_edge_for_the_configured_seconds(
    product: Product, settings: Any
) -> None:
    settings.PRODUCT_HTTP_MAX_AGE_SECONDS = 3
    client = APIClient()

    listed = client.get("/api/v1/products")
    detail = client.get(f"/api/v1/products/{product.pk}")

    assert listed.status_code == detail.status_code == 200
    assert listed["Cache-Control"] == "public, max-age=0, s-maxage=3"
    assert detail["Cache-Control"] == "public, max-age=0, s-maxage=3"


def test_an_unknown_product_is_not_marked_cacheable(db: None) -> None:
    response = APIClient().get("/api/v1/products/999999")

    assert response.status_code == 404
    assert "s-maxage" not in response.get("Cache-Control", "")
