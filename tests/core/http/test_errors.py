"""Every error answer is JSON in the one shape, never an HTML page or a 500."""

from __future__ import annotations

import psycopg
import pytest
from django.db import connection
from django.http import HttpRequest, HttpResponse
from django.test import Client
from django.urls import path
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from apps.core.http.parsers import LONE_SURROGATE, MAX_JSON_DEPTH, TOO_DEEP, body_problem
from apps.users.models import User
from config import urls as config_urls

ONE_MIB = 1024 * 1024
SIGNUP_URL = "/api/v1/users"


def test_unknown_route_answers_404_json(client):
    response = client.get("/no/such/route")

    assert response.status_code == 404
    assert response["Content-Type"] == "application/json"
    assert response.json() == {"detail": "Not found."}


def test_unknown_route_under_the_api_prefix_answers_404_json(client):
    response = client.post("/api/v1/nothing-here", {}, content_type="application/json")

    assert response.status_code == 404
    assert response["Content-Type"] == "application/json"
    assert response.json() == {"detail": "Not found."}


def test_post_to_unknown_route_from_a_real_client_answers_404_json_not_a_csrf_page():
    response = Client(enforce_csrf_checks=True).post(
        "/no/such/route", "{}", content_type="application/json"
    )

    assert response.status_code == 404
    assert response["Content-Type"] == "application/json"
    assert response.json() == {"detail": "Not found."}


@pytest.mark.django_db
def test_wrong_method_on_an_api_route_answers_405_json(client):
    response = client.delete(SIGNUP_URL)

    assert response.status_code == 405
    assert response["Content-Type"] == "application/json"
    assert response.json() == {"detail": 'Method "DELETE" not allowed.'}
    assert "POST" in response["Allow"]


SIGNUP_WITH = '{{"username": "{username}", "email": "a@example.com", "password": "{password}"}}'


def nested_body(depth: int) -> str:
    """Return a signup body whose extra member nests lists so the whole is ``depth`` deep."""
    lists = depth - 1
    fields = '"username": "deep", "email": "deep@example.com", "password": "a-long-password-1"'
    return f'{{{fields}, "x": {"[" * lists}{"]" * lists}}}'


@pytest.mark.django_db
@pytest.mark.parametrize(
    ("url", "body", "detail"),
    [
        *[
            (SIGNUP_URL, nested_body(depth), TOO_DEEP)
            for depth in (MAX_JSON_DEPTH + 1, 990, 5_000, 100_000)
        ],
        (SIGNUP_URL, SIGNUP_WITH.format(username="\\ud800", password="p-12345678"), LONE_SURROGATE),
        (SIGNUP_URL, SIGNUP_WITH.format(username="ok", password="\\udfff"), LONE_SURROGATE),
        ("/api/v1/auth/token", '{"username": "\\ud800", "password": "x"}', LONE_SURROGATE),
        (
            "/api/v1/auth/token",
            '{"\\udc00": "key", "username": "a", "password": "x"}',
            LONE_SURROGATE,
        ),
    ],
)
def test_json_that_would_fail_later_answers_400_json_and_creates_nothing(client, url, body, detail):
    """Too deep for the stack past ~1,000 levels, or a string no UTF-8 encoder takes."""
    response = client.post(url, body, content_type="application/json")

    assert response.status_code == 400
    assert response["Content-Type"] == "application/json"
    assert response.json() == {"detail": detail}
    assert not User.objects.exists()


@pytest.mark.django_db
def test_json_nested_to_the_limit_is_parsed(client):
    response = client.post(SIGNUP_URL, nested_body(MAX_JSON_DEPTH), content_type="application/json")

    assert response.status_code == 201, response.json()
    assert User.objects.filter(username="deep").exists()


@pytest.mark.django_db
def test_a_surrogate_pair_is_a_character_like_any_other(client):
    body = SIGNUP_WITH.format(username="smile", password="p-1234567a\\ud83d\\ude00")

    response = client.post(SIGNUP_URL, body, content_type="application/json")

    assert response.status_code == 201, response.json()
    assert User.objects.get(username="smile").check_password("p-1234567a\U0001f600")


def test_depth_counts_objects_and_lists_alike():
    assert body_problem({"a": [1, {"b": []}]}, max_depth=4) is None
    assert body_problem({"a": [1, {"b": []}]}, max_depth=3) == TOO_DEEP
    assert body_problem("scalar", max_depth=0) is None
    assert body_problem([], max_depth=1) is None


@pytest.mark.django_db
def test_malformed_json_answers_400_json_and_creates_nothing(client):
    response = client.post(SIGNUP_URL, '{"username": "x", ', content_type="application/json")

    assert response.status_code == 400
    assert response["Content-Type"] == "application/json"
    assert response.json()["detail"].startswith("JSON parse error")
    assert not User.objects.exists()


@pytest.mark.django_db
def test_body_one_byte_over_one_mib_answers_413_json_before_parsing(client):
    body = b"x" * (ONE_MIB + 1)

    response = client.generic("POST", SIGNUP_URL, body, content_type="application/json")

    assert response.status_code == 413
    assert response["Content-Type"] == "application/json"
    assert response.json() == {"detail": f"Request body is larger than {ONE_MIB} bytes."}
    assert not User.objects.exists()


@pytest.mark.django_db
def test_declared_content_length_over_the_limit_is_refused_without_reading(client):
    response = client.generic(
        "POST",
        SIGNUP_URL,
        b"{}",
        content_type="application/json",
        CONTENT_LENGTH=str(ONE_MIB + 1),
    )

    assert response.status_code == 413
    assert response["Content-Type"] == "application/json"
    assert response.json() == {"detail": f"Request body is larger than {ONE_MIB} bytes."}


@pytest.mark.django_db
def test_body_of_exactly_one_mib_reaches_the_view(client):
    prefix, suffix = '{"username": "', '"}'
    body = prefix + "a" * (ONE_MIB - len(prefix) - len(suffix)) + suffix
    assert len(body.encode()) == ONE_MIB

    response = client.post(SIGNUP_URL, body, content_type="application/json")

    assert response.status_code == 400
    errors = response.json()["errors"]
    assert errors["username"] == ["Ensure this field has no more than 150 characters."]
    assert errors["email"] == ["This field is required."]


def test_non_numeric_content_length_answers_400_json(client):
    response = client.generic(
        "POST", "/healthz", b"", content_type="application/json", CONTENT_LENGTH="ten"
    )

    assert response.status_code == 400
    assert response["Content-Type"] == "application/json"
    assert response.json() == {"detail": "Content-Length is not a number."}


def test_negative_content_length_answers_400_json(client):
    response = client.get("/healthz", CONTENT_LENGTH="-5")

    assert response.status_code == 400
    assert response.json() == {"detail": "Content-Length is negative."}


def test_error_answers_still_carry_the_request_id(client):
    response = client.get("/no/such/route", HTTP_X_REQUEST_ID="trace-0001-abcd")

    assert response.status_code == 404
    assert response["X-Request-ID"] == "trace-0001-abcd"


@pytest.mark.urls(__name__)
def test_unhandled_view_error_answers_500_json_without_traceback():
    client = Client(raise_request_exception=False)

    response = client.get("/test-only/crash")

    assert response.status_code == 500
    assert response["Content-Type"] == "application/json"
    assert response.json() == {"detail": "Internal server error."}
    assert "secret internals" not in response.content.decode()


def _crash(request: HttpRequest) -> HttpResponse:
    raise RuntimeError("secret internals")


class _LostCommit(APIView):
    authentication_classes = ()
    permission_classes = ()

    def post(self, request: Request) -> Response:
        # What psycopg raised at COMMIT in a Patroni switchover, as Django re-raises it.
        with connection.wrap_database_errors:
            raise psycopg.InternalError("received 2 results from command 'COMMIT'")


# The project's routes and error handlers plus views that fail, for the 500 and 503 tests.
urlpatterns = [
    path("test-only/crash", _crash),
    path("test-only/lost-commit", _LostCommit.as_view()),
    *config_urls.urlpatterns,
]
handler500 = config_urls.handler500


@pytest.mark.django_db(transaction=True)
def test_a_database_that_refuses_connections_answers_503_json_with_retry_after(
    auth_client, product
):
    from django.db import connections

    from deploy.local.processes import free_port

    primary = connections["default"]
    saved = dict(primary.settings_dict)
    primary.close()
    # Nothing listens there: every connection attempt is refused, as during a failover.
    primary.settings_dict["PORT"] = str(free_port())
    try:
        response = auth_client.post(
            "/api/v1/orders",
            {"items": [{"product_id": product.pk, "quantity": 1}]},
            format="json",
            headers={"Idempotency-Key": "db-down"},
        )
    finally:
        primary.close()
        primary.settings_dict.update(saved)

    assert response.status_code == 503
    assert response["Content-Type"] == "application/json"
    assert response["Retry-After"] == "1"
    assert response.json() == {"detail": "The database is unavailable; retry shortly."}


@pytest.mark.urls(__name__)
def test_a_commit_whose_connection_broke_answers_503_json_not_500() -> None:
    response = Client(raise_request_exception=False).post("/test-only/lost-commit")

    assert response.status_code == 503
    assert response["Retry-After"] == "1"
    assert response.json() == {"detail": "The database is unavailable; retry shortly."}
