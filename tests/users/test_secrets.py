"""No password or token reaches a log line, a metric, an error body or an outbox payload."""

from __future__ import annotations

import json
import logging
from typing import cast

import pytest
from django.test import Client
from rest_framework.test import APIClient

from apps.core.models import OutboxEvent
from apps.orders.models import Product
from apps.users.models import User
from tests.factories import PASSWORD, ProductFactory, UserFactory

pytestmark = pytest.mark.django_db(transaction=True)

TOKEN_URL = "/api/v1/auth/token"
# Distinctive guesses, so that a hit can only be this test's input.
WRONG_API = "wrong-api-guess-7f3a9c"
WRONG_ADMIN = "wrong-admin-guess-2b8e1d"


def test_a_login_an_order_and_failed_logins_leave_no_secret_behind(caplog, settings):
    settings.RATELIMIT_OVERRIDES = {}
    caplog.set_level(logging.DEBUG)
    user = cast(User, UserFactory(is_staff=True))
    product = cast(Product, ProductFactory())
    api, admin = APIClient(), Client()

    login = api.post(TOKEN_URL, {"username": user.username, "password": PASSWORD}, format="json")
    token = login.json()["token"]
    api.credentials(HTTP_AUTHORIZATION=f"Token {token}")
    order = api.post(
        "/api/v1/orders",
        {"items": [{"product_id": product.pk, "quantity": 1}]},
        format="json",
        headers={"Idempotency-Key": "secrets-order"},
    )
    failed_api = APIClient().post(
        TOKEN_URL, {"username": user.username, "password": WRONG_API}, format="json"
    )
    failed_admin = admin.post("/admin/login/", {"username": user.username, "password": WRONG_ADMIN})
    revoked_use = api.get("/api/v1/users/me")
    api.delete(TOKEN_URL)
    after_revoke = api.get("/api/v1/users/me")
    metrics = Client().get("/metrics").content.decode()

    assert (login.status_code, order.status_code) == (200, 201)
    assert (failed_api.status_code, failed_admin.status_code) == (400, 200)
    assert (revoked_use.status_code, after_revoke.status_code) == (200, 401)
    bodies = [order.content, failed_api.content, after_revoke.content]
    secrets = [PASSWORD, WRONG_API, WRONG_ADMIN, token]
    # factory_boy's own DEBUG lines describe this test's setup, not the application.
    logged = [
        record.getMessage() + " " + json.dumps(vars(record), default=str)
        for record in caplog.records
        if not record.name.startswith("factory")
    ]
    payloads = [json.dumps(p) for p in OutboxEvent.objects.values_list("payload", flat=True)]
    assert payloads, "the order wrote no outbox event to scan"
    assert "auth_login_failures_total" in metrics
    for secret in secrets:
        assert not [line for line in logged if secret in line]
        assert secret not in metrics
        assert not [body for body in bodies if secret.encode() in body]
        assert not [payload for payload in payloads if secret in payload]
