"""Liveness and readiness against the real database, cache and broker."""

from __future__ import annotations

import socket
from typing import Any

import pytest
from django.conf import settings as django_settings
from django.core.cache import cache, caches
from django.test import Client, override_settings

from tests.observability.conftest import samples


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


def _broker_node() -> str:
    host, port = django_settings.CELERY_BROKER_URL.split("@", 1)[1].split("/", 1)[0].split(":")
    return f"{host}:{port}"


def _state_samples(client) -> dict[tuple[str, str], float]:
    text = client.get("/metrics").content.decode()
    return {
        (dict(labels)["check"], dict(labels)["state"]): value
        for labels, value in samples(text, "readiness_state").items()
    }


@pytest.mark.django_db
def test_readyz_answers_ok_with_each_dependencys_role_when_all_are_up(client):
    response = client.get("/readyz")

    assert response.status_code == 200
    body = response.json()
    assert body["status"] == "ok"
    assert "detail" not in body
    checks = body["checks"]
    assert checks["database"] == {"ok": True, "state": "ok", "detail": "ok", "role": "leader"}
    assert checks["cache"] == {"ok": True, "state": "ok", "detail": "ok", "role": "master"}
    assert checks["broker"]["ok"] is True
    assert checks["broker"]["role"] == "node"
    assert checks["broker"]["node"] == _broker_node()
    assert checks["broker"]["cluster"]  # RabbitMQ's cluster name, e.g. rabbit@host
    # The suite's replica aliases mirror the primary: none to probe (tests/core/db probes one).
    assert checks["replica"] == {
        "ok": True,
        "state": "ok",
        "detail": "none configured (reads on the primary)",
        "role": None,
    }
    assert all(check["ok"] for check in checks.values())


@pytest.mark.django_db
def test_readyz_and_metrics_report_each_role_and_state(client):
    client.get("/readyz")

    text = client.get("/metrics").content.decode()
    roles = {
        (dict(labels)["check"], dict(labels)["target"], dict(labels)["role"]): value
        for labels, value in samples(text, "readiness_role").items()
    }
    states = _state_samples(client)

    assert roles[("database", "default", "leader")] == 1
    assert roles[("cache", "default", "master")] == 1
    assert roles[("broker", _broker_node(), "node")] == 1
    for check in ("database", "replica", "cache", "broker"):
        assert states[(check, "ok")] == 1
        assert states[(check, "degraded")] == states[(check, "down")] == 0


@pytest.mark.django_db
def test_readyz_broker_is_ok_while_the_first_of_a_clusters_urls_is_down(client, settings):
    # CELERY_BROKER_URL of a cluster whose first node is dead: kombu fails over.
    dead = f"amqp://guest:guest@127.0.0.1:{_closed_port()}//"
    settings.CELERY_BROKER_URL = f"{dead};{settings.CELERY_BROKER_URL}"

    response = client.get("/readyz")

    assert response.status_code == 200
    broker = response.json()["checks"]["broker"]
    assert (broker["ok"], broker["state"], broker["role"]) == (True, "ok", "node")


@pytest.mark.django_db
def test_readyz_strict_names_the_broker_when_every_url_of_the_cluster_is_down(client, settings):
    urls = [f"amqp://guest:guest@127.0.0.1:{_closed_port()}//" for _ in range(3)]
    settings.CELERY_BROKER_URL = ";".join(urls)

    response = client.get("/readyz?strict=1")

    assert response.status_code == 503
    assert response.json()["checks"]["broker"]["ok"] is False
    assert response.json()["checks"]["broker"]["state"] == "down"


@pytest.mark.django_db
def test_readyz_stays_200_reporting_the_broker_down_and_strict_answers_503(client, settings):
    settings.CELERY_BROKER_URL = f"amqp://guest:guest@127.0.0.1:{_closed_port()}//"

    response = client.get("/readyz")
    strict = client.get("/readyz?strict=1")

    assert response.status_code == 200
    assert response["Content-Type"] == "application/json"
    body = response.json()
    assert body["status"] == "degraded"
    assert body["detail"] == "Serving without: broker."
    assert body["checks"]["broker"]["ok"] is False
    assert body["checks"]["broker"]["state"] == "down"
    assert body["checks"]["broker"]["role"] is None
    assert body["checks"]["broker"]["detail"] != "ok"
    assert body["checks"]["database"]["state"] == "ok"
    assert body["checks"]["cache"]["state"] == "ok"
    assert strict.status_code == 503
    assert strict.json()["status"] == "unavailable"
    assert strict.json()["detail"] == "Not ready: broker."
    states = _state_samples(client)
    assert states[("broker", "down")] == 1
    assert states[("broker", "ok")] == 0


@pytest.mark.django_db
def test_readyz_stays_200_reporting_the_cache_down_when_it_is_unreachable(client):
    unreachable = _unreachable_redis_caches(_closed_port())

    with override_settings(CACHES=unreachable):
        assert caches["default"].key_prefix == "readyz-unreachable-test"
        response = client.get("/readyz")
        strict = client.get("/readyz?strict=true")

    assert response.status_code == 200
    body = response.json()
    assert body["status"] == "degraded"
    assert body["detail"] == "Serving without: cache."
    assert body["checks"]["cache"]["state"] == "down"
    assert body["checks"]["cache"]["detail"] != "ok"
    assert body["checks"]["database"]["state"] == "ok"
    assert body["checks"]["broker"]["state"] == "ok"
    assert strict.status_code == 503
    assert strict.json()["detail"] == "Not ready: cache."

    # Leaving the override must bring back the real cache, not the broken one.
    assert caches.settings == django_settings.CACHES
    assert caches["default"].key_prefix != "readyz-unreachable-test"
    cache.set("readyz:restored", "yes", timeout=5)
    assert cache.get("readyz:restored") == "yes"


@pytest.mark.parametrize("value", ["maybe", "2", "yes please"])
def test_readyz_answers_400_json_for_a_strict_value_it_does_not_know(client, value):
    response = client.get("/readyz", {"strict": value})

    assert response.status_code == 400
    assert response["Content-Type"] == "application/json"
    assert response.json() == {"detail": f"strict must be 1 or 0, not {value!r}."}
