"""Requests are counted by route template, never by raw path."""

from __future__ import annotations

import random
import re
import uuid

import pytest
from prometheus_client import REGISTRY

from apps.observability.middleware import UNMATCHED, route_template
from tests.observability.conftest import samples

SERIES_METRICS = ("http_requests_total", "http_request_duration_seconds_count")
# An id, a UUID or a long hex/number run in a label value means a path leaked in.
ID_RE = re.compile(r"\d{3,}|[0-9a-f]{8}-[0-9a-f]{4}|[0-9a-f]{16,}", re.IGNORECASE)


def _series(text: str) -> set[tuple[str, tuple[tuple[str, str], ...]]]:
    return {(name, labels) for name in SERIES_METRICS for labels in samples(text, name)}


def _count(method: str, endpoint: str, status: str) -> float:
    value = REGISTRY.get_sample_value(
        "http_requests_total", {"method": method, "endpoint": endpoint, "status": status}
    )
    return value or 0.0


def test_random_unknown_paths_add_at_most_two_series_and_no_id_label(gunicorn):
    rng = random.Random(7)
    paths = [
        rng.choice(
            [
                f"/wp-admin/{uuid.UUID(int=rng.getrandbits(128))}.php",
                f"/api/v1/unknown/{rng.randrange(10**9)}",
                f"/{rng.randrange(10**12)}",
                f"/api/v2/users/{rng.randrange(10**6)}/x",
            ]
        )
        for _ in range(10_000)
    ]
    before = _series(gunicorn.scrape())

    statuses = gunicorn.get_many(paths)

    after_text = gunicorn.scrape()
    after = _series(after_text)
    assert set(statuses) == {404}
    new = after - before
    assert len(new) <= 2, new
    assert {dict(labels)["endpoint"] for _, labels in new} <= {UNMATCHED}
    endpoints = {dict(labels)["endpoint"] for _, labels in after}
    assert [e for e in endpoints if ID_RE.search(e)] == []
    assert (
        samples(after_text, "http_requests_total")[
            (("endpoint", UNMATCHED), ("method", "GET"), ("status", "404"))
        ]
        >= 10_000
    )


@pytest.mark.django_db
def test_request_to_a_route_with_an_id_is_counted_under_its_template(client, user):
    before = _count("GET", "/api/v1/users/{id}", "200")

    response = client.get(f"/api/v1/users/{user.pk}")

    assert response.status_code == 200
    assert _count("GET", "/api/v1/users/{id}", "200") == before + 1
    assert (
        REGISTRY.get_sample_value(
            "http_requests_total",
            {"method": "GET", "endpoint": f"/api/v1/users/{user.pk}", "status": "200"},
        )
        is None
    )


def test_unknown_path_and_unknown_method_share_bounded_label_values(client):
    before = _count("other", UNMATCHED, "404")

    response = client.generic("BREW", "/no/such/path/12345")

    assert response.status_code == 404
    assert _count("other", UNMATCHED, "404") == before + 1


def test_duration_is_observed_once_per_request_under_the_template(client):
    labels = {"method": "GET", "endpoint": "/healthz"}
    before = REGISTRY.get_sample_value("http_request_duration_seconds_count", labels) or 0.0

    client.get("/healthz")
    client.get("/healthz")

    assert REGISTRY.get_sample_value("http_request_duration_seconds_count", labels) == before + 2


@pytest.mark.parametrize(
    ("route", "template"),
    [
        ("api/v1/users/<int:user_id>", "/api/v1/users/{id}"),
        ("api/v1/orders/<int:order_id>", "/api/v1/orders/{id}"),
        ("api/v1/things/<pk>", "/api/v1/things/{id}"),
        ("api/v1/tags/<slug:tag>", "/api/v1/tags/{tag}"),
        ("healthz", "/healthz"),
    ],
)
def test_route_template_names_parameters_not_values(route, template):
    assert route_template(route) == template


@pytest.mark.django_db
def test_database_statements_are_counted_by_alias_through_django_prometheus_backend():
    from django.db import connections

    assert connections["default"].__module__ == "django_prometheus.db.backends.postgresql.base"
    labels = {"alias": "default", "vendor": "postgresql"}
    before = REGISTRY.get_sample_value("django_db_execute_total", labels) or 0.0

    with connections["default"].cursor() as cursor:
        cursor.execute("SELECT 1")
        cursor.execute("SELECT 2")

    assert REGISTRY.get_sample_value("django_db_execute_total", labels) == before + 2
    assert (REGISTRY.get_sample_value("django_db_query_duration_seconds_count", labels) or 0) >= 2
