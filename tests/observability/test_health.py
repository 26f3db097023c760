"""Liveness and readiness against the real database, cache and broker."""

from __future__ import annotations

import socket
from typing import Any

import pytest
from django.conf import settings as django_settings
from django.core.cache import cache, caches
from django.test import Client, override_settings


def _closed_port() -> int:
    """Return a loopback TCP port nothing listens on."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
    return port


def _unreachable_redis_caches(port: int) -> dict[str, Any]:
    return {
        "default": {
            "BACKEND": "django_redis.cache.RedisCache",
            "LOCATION": f"redis://127.0.0.1:{port}/0",
            "KEY_PREFIX": "readyz-unreachable-test",
            "OPTIONS": {
                "CLIENT_CLASS": "django_redis.client.DefaultClient",
                "SOCKET_CONNECT_TIMEOUT": 0.1,
                "SOCKET_TIMEOUT": 0.1,
            },
        }
    }


@pytest.mark.django_db
def test_healthz_answers_ok_without_any_database_query(client, django_assert_num_queries):
    with django_assert_num_queries(0):
        response = client.get("/healthz")

    assert response.status_code == 200
    assert response["Content-Type"] == "application/json"
    assert response.json() == {"status": "ok"}


def test_healthz_answers_head_with_200(client):
    response = client.head("/healthz")

    assert response.status_code == 200


@pytest.mark.parametrize("path", ["/healthz", "/readyz"])
def test_health_endpoints_answer_other_methods_with_405_json(path):
    response = Client(enforce_csrf_checks=True).post(path, "{}", content_type="application/json")

    assert response.status_code == 405
    assert response["Content-Type"] == "application/json"
    assert response["Allow"] == "GET, HEAD"
    assert response.json() == {"detail": 'Method "POST" not allowed.'}


def test_healthz_answers_ok_while_cache_and_broker_are_unreachable(client, settings):
    settings.CELERY_BROKER_URL = f"amqp://guest:guest@127.0.0.1:{_closed_port()}//"
    settings.CACHES = _unreachable_redis_caches(_closed_port())

    response = client.get("/healthz")

    assert response.status_code == 200
    assert response.json() == {"status": "ok"}


@pytest.mark.django_db
def test_readyz_answers_ok_when_database_cache_and_broker_are_up(client):
    response = client.get("/readyz")

    assert response.status_code == 200
    body = response.json()
    assert body["status"] == "ok"
    assert "detail" not in body
    checks = body["checks"]
    assert checks["database"] == {"ok": True, "detail": "ok"}
    assert checks["cache"] == {"ok": True, "detail": "ok"}
    assert checks["broker"] == {"ok": True, "detail": "ok"}
    assert all(check["ok"] for check in checks.values())


@pytest.mark.django_db
def test_readyz_answers_503_naming_the_broker_when_it_is_unreachable(client, settings):
    settings.CELERY_BROKER_URL = f"amqp://guest:guest@127.0.0.1:{_closed_port()}//"

    response = client.get("/readyz")

    assert response.status_code == 503
    assert response["Content-Type"] == "application/json"
    body = response.json()
    assert body["status"] == "unavailable"
    assert body["detail"] == "Not ready: broker."
    assert body["checks"]["broker"]["ok"] is False
    assert body["checks"]["broker"]["detail"] != "ok"
    assert body["checks"]["database"] == {"ok": True, "detail": "ok"}
    assert body["checks"]["cache"] == {"ok": True, "detail": "ok"}


@pytest.mark.django_db
def test_readyz_broker_is_ok_while_the_first_of_a_clusters_urls_is_down(client, settings):
    # CELERY_BROKER_URL of a cluster whose first node is dead: kombu fails over.
    dead = f"amqp://guest:guest@127.0.0.1:{_closed_port()}//"
    settings.CELERY_BROKER_URL = f"{dead};{settings.CELERY_BROKER_URL}"

    response = client.get("/readyz")

    assert response.status_code == 200
    assert response.json()["checks"]["broker"] == {"ok": True, "detail": "ok"}


@pytest.mark.django_db
def test_readyz_names_the_broker_when_every_url_of_the_cluster_is_down(client, settings):
    urls = [f"amqp://guest:guest@127.0.0.1:{_closed_port()}//" for _ in range(3)]
    settings.CELERY_BROKER_URL = ";".join(urls)

    response = client.get("/readyz")

    assert response.status_code == 503
    assert response.json()["checks"]["broker"]["ok"] is False


@pytest.mark.django_db
def test_readyz_answers_503_naming_the_cache_when_it_is_unreachable(client):
    unreachable = _unreachable_redis_caches(_closed_port())

    with override_settings(CACHES=unreachable):
        assert caches["default"].key_prefix == "readyz-unreachable-test"
        response = client.get("/readyz")

    assert response.status_code == 503
    assert response["Content-Type"] == "application/json"
    body = response.json()
    assert body["status"] == "unavailable"
    assert body["detail"] == "Not ready: cache."
    assert body["checks"]["cache"]["ok"] is False
    assert body["checks"]["cache"]["detail"] != "ok"
    assert body["checks"]["database"] == {"ok": True, "detail": "ok"}
    assert body["checks"]["broker"] == {"ok": True, "detail": "ok"}

    # Leaving the override must bring back the real cache, not the broken one.
    assert caches.settings == django_settings.CACHES
    assert caches["default"].key_prefix != "readyz-unreachable-test"
    cache.set("readyz:restored", "yes", timeout=5)
    assert cache.get("readyz:restored") == "yes"
