"""The RateLimit fields and the 429 the API answers, through the full request path."""

from __future__ import annotations

import time

import pytest
import yaml
from rest_framework.renderers import BrowsableAPIRenderer, JSONRenderer
from rest_framework.test import APIClient

from apps.orders.apis import OrdersApi
from tests.ratelimit.sfv import parse_list

PATH = "/api/v1/products"


def fields(response):
    return parse_list(response["RateLimit-Policy"]), parse_list(response["RateLimit"])


def test_sfv_parser_reads_members_with_parameters_and_rejects_garbage():
    assert parse_list('"default";q=100;w=60, "login";r=0;t=5') == [
        ("default", {"q": 100, "w": 60}),
        ("login", {"r": 0, "t": 5}),
    ]
    for bad in ['"default";q=1.5', '"default" q=1', '"default";q=1,', "default;Q=1", '"x']:
        with pytest.raises(ValueError):  # noqa: PT011 -- the parser has one error type
            parse_list(bad)


@pytest.mark.django_db
def test_api_responses_carry_the_contract_fields_and_remaining_drops_by_one(api_client):
    responses = [api_client.get(PATH) for _ in range(3)]

    assert [r.status_code for r in responses] == [200, 200, 200]
    policies, states = zip(*(fields(r) for r in responses), strict=True)
    assert responses[0]["RateLimit-Policy"] == '"default";q=100;w=60'
    assert list(policies) == [[("default", {"q": 100, "w": 60})]] * 3
    assert [state[0][1]["r"] for state in states] == [99, 98, 97]
    assert {state[0][0] for state in states} == {"default"}
    assert all(0 < state[0][1]["t"] <= 60 for state in states)


@pytest.mark.django_db
def test_an_error_response_carries_the_fields_too(api_client):
    response = api_client.get("/api/v1/products/999999")

    assert response.status_code == 404
    assert fields(response)[1] == [("default", {"r": 99, "t": 60})]


@pytest.mark.django_db
def test_over_the_limit_the_api_answers_429_with_retry_after_and_then_recovers(
    api_client, set_policy
):
    set_policy("api", limit=3, window=2, algorithm="sliding_window", header_name="default")
    passed = [api_client.get(PATH) for _ in range(3)]

    refused = api_client.get(PATH)

    assert [r.status_code for r in passed] == [200, 200, 200]
    assert [fields(r)[1][0][1]["r"] for r in passed] == [2, 1, 0]
    assert refused.status_code == 429
    assert refused.json() == {
        "detail": f"Request was throttled. Expected available in {refused['Retry-After']} seconds."
    }
    retry_after = int(refused["Retry-After"])
    state = fields(refused)[1][0][1]
    assert state["r"] == 0
    assert 1 <= state["t"] <= retry_after <= 2
    assert fields(refused)[0] == [("default", {"q": 3, "w": 2})]

    time.sleep(retry_after)

    assert api_client.get(PATH).status_code == 200


@pytest.mark.django_db
def test_authenticated_users_are_counted_apart_from_their_address(user, token, set_policy):
    set_policy("api", limit=1, window=60, algorithm="sliding_window", header_name="default")
    signed_in = APIClient()
    signed_in.credentials(HTTP_AUTHORIZATION=f"Token {token}")
    anonymous = APIClient()

    assert signed_in.get(PATH).status_code == 200
    assert anonymous.get(PATH).status_code == 200
    assert signed_in.get(PATH).status_code == 429
    assert anonymous.get(PATH).status_code == 429


@pytest.mark.django_db
def test_login_admits_five_attempts_per_address_and_username(api_client, user):
    wrong = {"username": user.username, "password": "not-the-password"}
    attempts = [api_client.post("/api/v1/auth/token", wrong, format="json") for _ in range(6)]
    other_name = api_client.post(
        "/api/v1/auth/token", {"username": "someone-else", "password": "x"}, format="json"
    )

    assert [r.status_code for r in attempts] == [400] * 5 + [429]
    assert attempts[5]["RateLimit-Policy"] == '"login";q=5;w=60'
    assert fields(attempts[4])[1] == [("login", {"r": 0, "t": 60})]
    assert int(attempts[5]["Retry-After"]) >= 59
    assert other_name.status_code == 400


@pytest.mark.django_db
def test_login_counts_the_username_case_insensitively(api_client, user):
    for name in ["Ada", "ADA", "ada", " ada", "aDa"]:
        api_client.post("/api/v1/auth/token", {"username": name, "password": "x"}, format="json")

    response = api_client.post(
        "/api/v1/auth/token", {"username": "adA", "password": "x"}, format="json"
    )

    assert response.status_code == 429


def test_schema_documents_429_on_every_api_operation(client):
    schema = yaml.safe_load(client.get("/api/schema/").content)

    operations = [
        (path, method, operation)
        for path, item in schema["paths"].items()
        for method, operation in item.items()
        if method in {"get", "post", "patch"}
    ]
    assert operations
    for path, method, operation in operations:
        throttled = operation["responses"]["429"]["content"]["application/json"]["schema"]
        assert throttled == {"$ref": "#/components/schemas/ErrorOutput"}, (path, method)
    assert "503" in schema["paths"]["/api/v1/auth/token"]["post"]["responses"]


@pytest.mark.django_db
def test_a_request_refused_as_unauthenticated_counts_and_carries_the_fields(set_policy):
    set_policy("api", limit=2, window=60, algorithm="sliding_window", header_name="default")
    client = APIClient()

    refused = [client.get("/api/v1/users/me") for _ in range(2)]
    limited = client.get("/api/v1/users/me")

    assert [r.status_code for r in refused] == [401, 401]
    assert [fields(r)[1][0][1]["r"] for r in refused] == [1, 0]
    assert limited.status_code == 429
    assert int(limited["Retry-After"]) >= 1


@pytest.mark.django_db
def test_the_browsable_api_counts_a_request_once(monkeypatch, set_policy, auth_client):
    set_policy("api", limit=100, window=60, algorithm="sliding_window", header_name="default")
    # As with DJANGO_DEBUG on: its POST form checks the view's permissions again.
    monkeypatch.setattr(OrdersApi, "renderer_classes", [JSONRenderer, BrowsableAPIRenderer])
    page = auth_client.get("/api/v1/orders", HTTP_ACCEPT="text/html")
    after = auth_client.get("/api/v1/orders")

    assert page.status_code == 200
    assert page["Content-Type"].startswith("text/html")
    assert fields(after)[1][0][1]["r"] == 98
