"""django-prometheus's database, cache and model metrics, in-process and under gunicorn."""

from __future__ import annotations

import json
import uuid
from decimal import Decimal
from typing import Any

import pytest
from django.conf import settings
from django.core.cache import cache
from django.db import connections
from django.db.utils import ConnectionHandler
from prometheus_client import REGISTRY
from rest_framework.test import APIClient

from apps.core.db.settings import postgres_database
from apps.observability.cache_metrics import LocMemCache
from apps.orders.models import Order, Product
from apps.users.models import User
from tests.observability.conftest import database_url, samples

PASSWORD = "a-long-Passphrase-42"  # noqa: S105 -- a test user's password
DB_EXECUTE = "django_db_execute_total"
CACHE_NAMES = {
    "get": "django_cache_get_total",
    "hits": "django_cache_get_hits_total",
    "misses": "django_cache_get_misses_total",
}
MODEL_INSERTS = "django_model_inserts_total"


def _value(text: str, name: str, **labels: str) -> float:
    return samples(text, name).get(tuple(sorted(labels.items())), 0.0)


def _scrape(client: APIClient) -> str:
    response = client.get("/metrics")
    assert response.status_code == 200
    return bytes(response.content).decode()


def _sign_up(client: APIClient) -> tuple[str, str]:
    """Sign up a new user over the API; return the username and an API token."""
    username = f"m{uuid.uuid4().hex[:12]}"
    body = {"username": username, "email": f"{username}@example.com", "password": PASSWORD}
    assert client.post("/api/v1/users", body, format="json").status_code == 201
    response = client.post(
        "/api/v1/auth/token", {"username": username, "password": PASSWORD}, format="json"
    )
    assert response.status_code == 200, response.content
    return username, response.json()["token"]


@pytest.mark.django_db
def test_api_requests_move_the_database_cache_and_model_metrics_in_metrics():
    client = APIClient()
    product = Product.objects.create(sku="DM-1", name="Metered", price=Decimal("2.50"), stock=9)
    before = _scrape(client)

    _, token = _sign_up(client)
    client.credentials(HTTP_AUTHORIZATION=f"Token {token}")
    response = client.post(
        "/api/v1/orders",
        {"items": [{"product_id": product.pk, "quantity": 2}]},
        format="json",
        headers={"Idempotency-Key": "dm-1"},
    )
    assert response.status_code == 201, response.content
    client.get("/readyz")
    after = _scrape(client)

    default = {"alias": "default", "vendor": "postgresql"}
    assert _value(after, DB_EXECUTE, **default) > _value(before, DB_EXECUTE, **default)
    duration = "django_db_query_duration_seconds_count"
    assert _value(after, duration, **default) > _value(before, duration, **default)
    # /readyz writes a key to the default cache and reads it back: one read, one hit.
    for kind in ("get", "hits"):
        name = CACHE_NAMES[kind]
        assert _value(after, name, backend="redis") >= _value(before, name, backend="redis") + 1
    # One new user and one order, each saved once; the event row with the order.
    for model in ("user", "order", "outboxevent"):
        assert _value(after, MODEL_INSERTS, model=model) == (
            _value(before, MODEL_INSERTS, model=model) + 1
        ), model
    assert Order.objects.count() == 1


def _cache_counts(backend: str) -> dict[str, float]:
    labels = {"backend": backend}
    return {
        kind: REGISTRY.get_sample_value(name, labels) or 0.0 for kind, name in CACHE_NAMES.items()
    }


def test_redis_cache_counts_a_stored_falsy_value_as_a_hit_and_an_absent_key_as_a_miss():
    key = f"metrics-test:{uuid.uuid4().hex}"
    before = _cache_counts("redis")

    cache.set(key, 0, timeout=30)
    assert cache.get(key, "default") == 0
    assert cache.get(key + ":absent", "default") == "default"

    assert _cache_counts("redis") == {
        "get": before["get"] + 2,
        "hits": before["hits"] + 1,
        "misses": before["misses"] + 1,
    }


def test_in_process_cache_returns_stored_falsy_values_and_counts_them_as_hits():
    local = LocMemCache("metrics-test", {})
    local.set("zero", 0)
    local.set("empty", [])
    before = _cache_counts("locmem")

    assert local.get("zero", "default") == 0
    assert local.get("empty", "default") == []
    assert local.get("absent", "default") == "default"

    assert _cache_counts("locmem") == {
        "get": before["get"] + 3,
        "hits": before["hits"] + 2,
        "misses": before["misses"] + 1,
    }


def test_database_aliases_use_django_prometheus_backends():
    for alias in settings.DATABASES:
        assert connections[alias].__module__.startswith("django_prometheus.db.backends."), alias


def test_gunicorn_workers_export_database_cache_and_model_metrics_once(gunicorn, django_db_blocker):
    before = gunicorn.scrape()
    status, body = gunicorn.get("/readyz")
    assert status == 200, body
    assert gunicorn.get("/api/v1/products")[0] == 200
    username = f"g{uuid.uuid4().hex[:12]}"
    signup = {"username": username, "email": f"{username}@example.com", "password": PASSWORD}
    try:
        assert gunicorn.post("/api/v1/users", json.dumps(signup))[0] == 201
        after = gunicorn.scrape()
    finally:
        with django_db_blocker.unblock():
            User.objects.filter(username=username).delete()

    executed = {
        dict(labels)["alias"]: value
        for labels, value in samples(after, DB_EXECUTE).items()
        if dict(labels)["vendor"] == "postgresql"
    }
    assert set(executed) <= set(settings.DATABASES)
    assert executed["default"] > _value(before, DB_EXECUTE, alias="default", vendor="postgresql")
    for kind in ("get", "hits"):
        name = CACHE_NAMES[kind]
        assert _value(after, name, backend="redis") > _value(before, name, backend="redis")
    assert _value(after, MODEL_INSERTS, model="user") == (
        _value(before, MODEL_INSERTS, model="user") + 1
    )
    # Every model with the mixin has its series from the start, at zero if unused.
    assert ("model", "order") in {labels[0] for labels in samples(after, MODEL_INSERTS)}
    # One family per name: the multiprocess collector is the only source of the scrape.
    for name in (DB_EXECUTE, CACHE_NAMES["get"], MODEL_INSERTS):
        assert after.count(f"# TYPE {name} counter\n") == 1, name


@pytest.mark.django_db
def test_a_pooled_postgresql_alias_counts_its_statements():
    pooled = postgres_database(database_url("default"), conn_max_age=0, pool_min=1, pool_max=2)
    # Its own alias, so the pool and the counts are this test's alone.
    connection: Any = ConnectionHandler({"default": dict(pooled), "pooled": pooled})["pooled"]
    labels = {"alias": "pooled", "vendor": "postgresql"}
    before = REGISTRY.get_sample_value(DB_EXECUTE, labels) or 0.0
    try:
        for _ in range(2):
            with connection.cursor() as cursor:
                cursor.execute("SELECT 1")
                assert cursor.fetchone() == (1,)
            assert connection.pool is not None
            connection.close()  # Back to the pool; the next cursor borrows again.
    finally:
        connection.close_pool()

    # Both statements, plus whatever session set-up Django runs on each borrowed connection.
    assert (REGISTRY.get_sample_value(DB_EXECUTE, labels) or 0.0) >= before + 2
