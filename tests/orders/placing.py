"""Placing an order through the API, as the order tests that need one placed do."""

from __future__ import annotations

from typing import Any

from rest_framework.test import APIClient


def place_order(
    client: APIClient, product_id: int, key: str, *, quantity: int = 1, **headers: Any
) -> dict[str, Any]:
    """POST one order line under ``key``; assert it was accepted (201) and return its body.

    The order commits to the outbox whatever the worker or broker does, so a placed
    order is never a failed request.
    """
    response = client.post(
        "/api/v1/orders",
        {"items": [{"product_id": product_id, "quantity": quantity}]},
        format="json",
        HTTP_IDEMPOTENCY_KEY=key,
        **headers,
    )
    assert response.status_code == 201, response.content
    body: dict[str, Any] = response.json()
    return body
