"""The catalogue and orders over HTTP: bodies, errors, idempotency, ownership, paging."""

from __future__ import annotations

import base64
import threading
from datetime import datetime
from decimal import Decimal
from typing import Any, cast

import pytest
from django.db import connection
from rest_framework.test import APIClient

from apps.core.http.idempotency import request_fingerprint, run_idempotent
from apps.core.models import IdempotencyRecord
from apps.orders.models import Order, OrderLine, Product
from apps.orders.services import OrderItem, order_create
from apps.users.models import User
from apps.users.services import token_create
from tests.factories import PASSWORD, ProductFactory, UserFactory

PRODUCTS = "/api/v1/products"
ORDERS = "/api/v1/orders"


def iso(value: datetime) -> str:
    """Render a timestamp the way the API does (UTC with a ``Z``)."""
    return value.isoformat().replace("+00:00", "Z")


def client_for(user: User) -> APIClient:
    client = APIClient()
    client.credentials(
        HTTP_AUTHORIZATION=f"Token {token_create(username=user.username, password=PASSWORD)}"
    )
    return client


def post_order(client: APIClient, body: Any, key: str | None = "key-1") -> Any:
    headers = {} if key is None else {"Idempotency-Key": key}
    return client.post(ORDERS, body, format="json", headers=headers)


def make_product(price: str, stock: int = 100) -> Product:
    return cast(Product, ProductFactory(price=Decimal(price), stock=stock))


def place(user: User, products: list[Product], key: str) -> Order:
    items = [OrderItem(product_id=p.pk, quantity=i + 1) for i, p in enumerate(products)]
    return order_create(owner_id=user.pk, items=items, idempotency_key=key)


def walk(
    client: APIClient, url: str, django_assert_num_queries: Any, per_page: int
) -> list[list[int]]:
    """Follow ``next`` links from ``url``; return the ids of every page, in order."""
    pages: list[list[int]] = []
    next_url: str | None = url
    while next_url is not None:
        with django_assert_num_queries(per_page):
            response = client.get(next_url)
        assert response.status_code == 200
        body = response.json()
        pages.append([row["id"] for row in body["results"]])
        next_url = body["next"]
    return pages


# --- Products -----------------------------------------------------------------------


def test_product_list_walks_every_product_once_in_id_order_with_one_query_per_page(
    api_client, db, django_assert_num_queries
):
    ids = [make_product("1.00").pk for _ in range(5)]

    pages = walk(api_client, f"{PRODUCTS}?limit=2", django_assert_num_queries, per_page=1)

    assert pages == [ids[0:2], ids[2:4], ids[4:5]]


def test_product_list_page_has_exact_rows_and_cursor_links(api_client, db):
    first = make_product("12.50", stock=7)
    make_product("1.00")

    response = api_client.get(f"{PRODUCTS}?limit=1")

    assert response.status_code == 200
    body = response.json()
    assert body["previous"] is None
    assert body["next"].startswith("http://testserver/api/v1/products?cursor=")
    assert body["results"] == [
        {"id": first.pk, "sku": first.sku, "name": first.name, "price": "12.50", "stock": 7}
    ]


@pytest.mark.parametrize(
    "position",
    ["2026-", "1.5", "abc", "%00", str(2**63), str(-(2**63) - 1)],
)
def test_a_forged_cursor_position_answers_404_json_not_a_500(api_client, db, position):
    make_product("1.00")
    # A cursor is base64 of a query string; its position is meant to be a primary key.
    cursor = base64.b64encode(f"p={position}".encode()).decode()

    response = api_client.get(PRODUCTS, {"cursor": cursor})

    assert response.status_code == 404
    assert response["Content-Type"] == "application/json"
    assert response.json() == {"detail": "Invalid cursor"}


def test_a_cursor_at_a_bigint_edge_is_still_a_cursor(api_client, db):
    product = make_product("1.00")
    cursor = base64.b64encode(f"p={-(2**63)}".encode()).decode()

    response = api_client.get(PRODUCTS, {"cursor": cursor})

    assert response.status_code == 200
    assert [row["id"] for row in response.json()["results"]] == [product.pk]


def test_product_detail_returns_the_product_to_anyone(api_client, db):
    product = make_product("19.99", stock=3)

    response = api_client.get(f"{PRODUCTS}/{product.pk}")

    assert response.status_code == 200
    assert response.json() == {
        "id": product.pk,
        "sku": product.sku,
        "name": product.name,
        "price": "19.99",
        "stock": 3,
    }


def test_unknown_product_is_a_json_404(api_client, db):
    response = api_client.get(f"{PRODUCTS}/999999")

    assert response.status_code == 404
    assert response["Content-Type"] == "application/json"
    assert response.json() == {"detail": "Product not found."}


# --- Orders: create -----------------------------------------------------------------


def test_order_create_prices_lines_server_side_and_leaves_stock_alone(auth_client, user):
    widget = make_product("19.99", stock=10)
    gadget = make_product("0.10", stock=5)
    body = {
        "items": [
            {"product_id": widget.pk, "quantity": 3, "price": "0.01"},
            {"product_id": gadget.pk, "quantity": 7, "unit_price": "0.01"},
        ],
        "total": "0.02",
    }

    response = post_order(auth_client, body)

    assert response.status_code == 201
    order = Order.objects.get()
    assert response.json() == {
        "id": order.pk,
        "status": "pending",
        "status_reason": "",
        "total": "60.67",
        "created_at": iso(order.created_at),
        "lines": [
            {"product_id": widget.pk, "quantity": 3, "unit_price": "19.99", "subtotal": "59.97"},
            {"product_id": gadget.pk, "quantity": 7, "unit_price": "0.10", "subtotal": "0.70"},
        ],
    }
    assert response.has_header("Idempotent-Replayed") is False
    assert (order.owner_id, order.idempotency_key, order.total) == (
        user.pk,
        "key-1",
        Decimal("60.67"),
    )
    assert list(
        OrderLine.objects.filter(order=order)
        .order_by("id")
        .values_list("product_id", "quantity", "unit_price")
    ) == [(widget.pk, 3, Decimal("19.99")), (gadget.pk, 7, Decimal("0.10"))]
    assert list(Product.objects.order_by("id").values_list("stock", flat=True)) == [10, 5]


def test_order_create_accepts_the_largest_quantity_and_a_255_character_key(auth_client):
    product = make_product("0.01")

    response = post_order(
        auth_client, {"items": [{"product_id": product.pk, "quantity": 10_000}]}, key="k" * 255
    )

    assert response.status_code == 201
    assert response.json()["total"] == "100.00"
    assert Order.objects.get().idempotency_key == "k" * 255


def test_order_create_accepts_a_thousand_lines(auth_client):
    products = Product.objects.bulk_create(
        Product(sku=f"BULK-{n}", name=f"Bulk {n}", price=Decimal("0.01"), stock=1)
        for n in range(1000)
    )

    response = post_order(
        auth_client, {"items": [{"product_id": p.pk, "quantity": 1} for p in products]}
    )

    assert response.status_code == 201
    assert response.json()["total"] == "10.00"
    assert OrderLine.objects.count() == 1000


def test_order_create_without_idempotency_key_is_refused(auth_client, product):
    response = post_order(
        auth_client, {"items": [{"product_id": product.pk, "quantity": 1}]}, key=None
    )

    assert response.status_code == 400
    assert response.json() == {
        "detail": "The Idempotency-Key header is required.",
        "errors": {"Idempotency-Key": ["This header is required."]},
    }
    assert Order.objects.exists() is False
    assert IdempotencyRecord.objects.exists() is False


@pytest.mark.parametrize("key", ["k" * 256, "   ", "tab\there"])
def test_order_create_with_malformed_idempotency_key_is_refused(auth_client, product, key):
    response = post_order(
        auth_client, {"items": [{"product_id": product.pk, "quantity": 1}]}, key=key
    )

    assert response.status_code == 400
    assert list(response.json()["errors"]) == ["Idempotency-Key"]
    assert Order.objects.exists() is False
    assert IdempotencyRecord.objects.exists() is False


def test_order_for_unknown_product_is_refused_and_leaves_nothing_behind(auth_client, product):
    body = {
        "items": [{"product_id": product.pk, "quantity": 1}, {"product_id": 987654, "quantity": 1}]
    }

    response = post_order(auth_client, body)

    assert response.status_code == 400
    assert response.json() == {
        "detail": "Invalid input.",
        "errors": {"items": ["Unknown product id(s): 987654."]},
    }
    assert Order.objects.exists() is False
    assert OrderLine.objects.exists() is False
    assert IdempotencyRecord.objects.exists() is False


@pytest.mark.parametrize(
    ("quantity", "message"),
    [
        (0, "Ensure this value is greater than or equal to 1."),
        (-1, "Ensure this value is greater than or equal to 1."),
        (10_001, "Ensure this value is less than or equal to 10000."),
    ],
)
def test_order_with_quantity_out_of_range_is_refused(auth_client, product, quantity, message):
    response = post_order(
        auth_client, {"items": [{"product_id": product.pk, "quantity": quantity}]}
    )

    assert response.status_code == 400
    assert response.json() == {
        "detail": "Invalid input.",
        "errors": {"items": {"0": {"quantity": [message]}}},
    }
    assert Order.objects.exists() is False


def test_order_whose_total_would_not_fit_is_refused_not_a_server_error(auth_client):
    dear = [make_product("99999999.99"), make_product("99999999.99")]
    items = [{"product_id": p.pk, "quantity": 10_000} for p in dear]

    response = post_order(auth_client, {"items": items})

    assert response.status_code == 400
    assert response.json() == {
        "detail": "Invalid input.",
        "errors": {"items": ["An order total cannot exceed 999999999999.99."]},
    }
    assert Order.objects.exists() is False
    assert IdempotencyRecord.objects.exists() is False


def test_order_with_more_than_a_thousand_lines_is_refused(auth_client):
    items = [{"product_id": n, "quantity": 1} for n in range(1, 1002)]

    response = post_order(auth_client, {"items": items})

    assert response.status_code == 400
    assert response.json() == {
        "detail": "Invalid input.",
        "errors": {"items": ["Ensure this field has no more than 1000 elements."]},
    }
    assert Order.objects.exists() is False


def test_order_without_items_is_refused(auth_client):
    response = post_order(auth_client, {"items": []})

    assert response.status_code == 400
    assert response.json() == {
        "detail": "Invalid input.",
        "errors": {"items": ["Ensure this field has at least 1 elements."]},
    }
    assert Order.objects.exists() is False


def test_order_naming_a_product_twice_is_refused(auth_client, product):
    items = [{"product_id": product.pk, "quantity": 1}, {"product_id": product.pk, "quantity": 2}]

    response = post_order(auth_client, {"items": items})

    assert response.status_code == 400
    assert response.json() == {
        "detail": "Invalid input.",
        "errors": {"items": [f"Product {product.pk} appears more than once."]},
    }
    assert Order.objects.exists() is False
    assert IdempotencyRecord.objects.exists() is False


@pytest.mark.parametrize(
    ("body", "errors"),
    [
        ({"items": "many"}, {"items": ['Expected a list of items but got type "str".']}),
        ({}, {"items": ["This field is required."]}),
        (
            [{"product_id": 1, "quantity": 1}],
            {"non_field_errors": ["Invalid data. Expected a dictionary, but got list."]},
        ),
    ],
)
def test_order_body_of_the_wrong_shape_is_refused(auth_client, body, errors):
    response = post_order(auth_client, body)

    assert response.status_code == 400
    assert response.json() == {"detail": "Invalid input.", "errors": errors}
    assert Order.objects.exists() is False


def test_order_body_that_is_not_json_is_refused_in_json(auth_client):
    response = auth_client.post(
        ORDERS, '{"items": [', content_type="application/json", headers={"Idempotency-Key": "k"}
    )

    assert response.status_code == 400
    assert response["Content-Type"] == "application/json"
    assert response.json()["detail"].startswith("JSON parse error")
    assert Order.objects.exists() is False


def test_order_create_requires_authentication(api_client, product):
    response = post_order(api_client, {"items": [{"product_id": product.pk, "quantity": 1}]})

    assert response.status_code == 401
    assert response.json() == {"detail": "Authentication credentials were not provided."}
    assert response["WWW-Authenticate"] == "Token"
    assert Order.objects.exists() is False


# --- Orders: idempotency ------------------------------------------------------------


def test_retry_with_same_key_and_body_replays_the_first_response(auth_client, product):
    body = {"items": [{"product_id": product.pk, "quantity": 2}]}
    first = post_order(auth_client, body)

    again = post_order(auth_client, body)

    assert (first.status_code, again.status_code) == (201, 201)
    assert again.json() == first.json()
    assert again["Idempotent-Replayed"] == "true"
    assert Order.objects.count() == 1
    assert OrderLine.objects.count() == 1


def test_replay_sends_the_first_responses_exact_bytes_and_content_type(auth_client, product):
    body = {"items": [{"product_id": product.pk, "quantity": 2}]}
    first = post_order(auth_client, body)

    again = post_order(auth_client, body)

    assert (first.status_code, again.status_code) == (201, 201)
    assert again.content == first.content
    assert again["Content-Type"] == first["Content-Type"] == "application/json"
    # The order's own field order, which jsonb storage used to lose.
    assert list(again.json()) == ["id", "status", "status_reason", "total", "created_at", "lines"]


@pytest.mark.parametrize("quantity", ["2", 2.5, True, None])
def test_order_with_a_non_integer_quantity_is_refused(auth_client, product, quantity):
    response = post_order(
        auth_client, {"items": [{"product_id": product.pk, "quantity": quantity}]}
    )

    assert response.status_code == 400
    assert list(response.json()["errors"]) == ["items"]
    assert Order.objects.exists() is False


def test_order_quantity_with_a_zero_fraction_is_the_integer(auth_client, product):
    response = post_order(auth_client, {"items": [{"product_id": product.pk, "quantity": 2.0}]})

    assert response.status_code == 201
    assert response.json()["lines"][0]["quantity"] == 2


@pytest.mark.parametrize("limit", ["0", "201", "abc", "", "-1", "1.5"])
def test_list_with_a_limit_out_of_range_is_refused(auth_client, limit):
    response = auth_client.get(ORDERS, {"limit": limit})

    assert response.status_code == 400
    assert response.json() == {
        "detail": "Invalid input.",
        "errors": {"limit": ["Give one integer from 1 to 200."]},
    }


def test_list_with_a_repeated_limit_is_refused(api_client):
    response = api_client.get("/api/v1/products?limit=5&limit=5")

    assert response.status_code == 400
    assert response.json()["errors"] == {"limit": ["Give one integer from 1 to 200."]}


def test_retry_with_keys_reordered_counts_as_the_same_body(auth_client, product):
    first = auth_client.post(
        ORDERS,
        f'{{"items": [{{"product_id": {product.pk}, "quantity": 2}}]}}',
        content_type="application/json",
        headers={"Idempotency-Key": "k"},
    )

    again = auth_client.post(
        ORDERS,
        f'{{ "items" : [ {{"quantity":2,"product_id":{product.pk}}} ] }}',
        content_type="application/json",
        headers={"Idempotency-Key": "k"},
    )

    assert (first.status_code, again.status_code) == (201, 201)
    assert again.json() == first.json()
    assert again["Idempotent-Replayed"] == "true"
    assert Order.objects.count() == 1


def test_placing_an_order_writes_its_lines_and_never_reads_them_back(
    auth_client, db, django_assert_num_queries
):
    products = [make_product("1.00"), make_product("2.00"), make_product("3.00")]
    body = {"items": [{"product_id": p.pk, "quantity": 2} for p in products]}
    # A first request records the user's activity, which later ones skip.
    assert post_order(auth_client, body, key="first").status_code == 201
    # The token; the savepoint (the test's transaction) and its release; the key's lock
    # and record; the products; the order, its lines in one INSERT, the outbox event and
    # the idempotency record.
    with django_assert_num_queries(10):
        response = post_order(auth_client, body, key="lines")

    assert response.status_code == 201
    assert [(line["product_id"], line["quantity"]) for line in response.json()["lines"]] == [
        (p.pk, 2) for p in products
    ]


def test_reusing_a_key_with_another_body_is_refused(auth_client, product):
    first = post_order(auth_client, {"items": [{"product_id": product.pk, "quantity": 1}]})

    other = post_order(auth_client, {"items": [{"product_id": product.pk, "quantity": 5}]})

    assert first.status_code == 201
    assert other.status_code == 422
    assert other.json() == {
        "detail": "This Idempotency-Key was already used with a different request body."
    }
    assert list(Order.objects.values_list("id", flat=True)) == [first.json()["id"]]


@pytest.mark.django_db(transaction=True)
def test_request_while_the_first_is_in_flight_is_refused():
    user = cast(User, UserFactory())
    product = make_product("1.00")
    body = {"items": [{"product_id": product.pk, "quantity": 1}]}
    inside, release = threading.Event(), threading.Event()

    def first_request() -> None:
        def hold() -> tuple[int, object]:
            inside.set()
            assert release.wait(10)
            return 201, {}

        try:
            run_idempotent(
                owner_id=user.pk,
                scope="orders.create",
                key="busy",
                fingerprint=request_fingerprint(body),
                action=hold,
            )
        finally:
            connection.close()

    first = threading.Thread(target=first_request)
    first.start()
    try:
        assert inside.wait(10)
        response = post_order(client_for(user), body, key="busy")
    finally:
        release.set()
        first.join(10)

    assert response.status_code == 409
    assert response.json() == {
        "detail": "A request with this Idempotency-Key is still being processed."
    }
    assert Order.objects.exists() is False


def test_idempotency_keys_belong_to_each_user(auth_client, user, product):
    other = cast(User, UserFactory())
    body = {"items": [{"product_id": product.pk, "quantity": 1}]}

    mine = post_order(auth_client, body, key="shared")
    theirs = post_order(client_for(other), body, key="shared")

    assert (mine.status_code, theirs.status_code) == (201, 201)
    assert theirs.has_header("Idempotent-Replayed") is False
    assert mine.json()["id"] != theirs.json()["id"]
    assert sorted(Order.objects.values_list("owner_id", flat=True)) == sorted([user.pk, other.pk])


def test_key_of_a_refused_request_can_be_used_again_with_a_fixed_body(auth_client, product):
    refused = post_order(
        auth_client, {"items": [{"product_id": 987654, "quantity": 1}]}, key="retry"
    )

    fixed = post_order(
        auth_client, {"items": [{"product_id": product.pk, "quantity": 1}]}, key="retry"
    )

    assert refused.status_code == 400
    assert fixed.status_code == 201
    assert fixed.has_header("Idempotent-Replayed") is False
    assert Order.objects.get().pk == fixed.json()["id"]


Outcome = tuple[int, dict[str, Any], bool]


def race_two_posts(token: str, body: Any, key: str) -> list[Outcome]:
    """POST the same order from two threads released together; return (status, body, replayed)."""
    barrier = threading.Barrier(2)
    outcomes: list[Outcome] = []
    errors: list[BaseException] = []

    def send() -> None:
        client = APIClient()
        client.credentials(HTTP_AUTHORIZATION=f"Token {token}")
        try:
            barrier.wait(timeout=10)
            response = post_order(client, body, key=key)
            replayed = response.has_header("Idempotent-Replayed")
            outcomes.append((response.status_code, response.json(), replayed))
        except BaseException as exc:
            errors.append(exc)
        finally:
            connection.close()

    threads = [threading.Thread(target=send) for _ in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=30)
    assert errors == []
    return outcomes


@pytest.mark.django_db(transaction=True)
def test_concurrent_requests_with_one_key_create_exactly_one_order():
    user = cast(User, UserFactory())
    token = token_create(username=user.username, password=PASSWORD)
    product = make_product("2.50")
    body = {"items": [{"product_id": product.pk, "quantity": 4}]}

    for attempt in range(10):
        key = f"race-{attempt}"

        outcomes = race_two_posts(token, body, key)

        assert len(outcomes) == 2
        orders = list(
            Order.objects.filter(owner=user, idempotency_key=key).values_list("id", flat=True)
        )
        assert len(orders) == 1
        created = [o for o in outcomes if o[0] == 201 and not o[2]]
        assert [o[1]["id"] for o in created] == orders
        other = next(o for o in outcomes if o is not created[0])
        if other[0] == 201:
            assert other[2] is True
            assert other[1] == created[0][1]
        else:
            assert other[0:2] == (
                409,
                {"detail": "A request with this Idempotency-Key is still being processed."},
            )
    assert Order.objects.count() == 10
    assert IdempotencyRecord.objects.count() == 10


# --- Orders: reading, ownership, paging ---------------------------------------------


def test_order_list_shows_only_the_callers_orders_newest_first(auth_client, user):
    products = [make_product("1.50"), make_product("2.00")]
    stranger = cast(User, UserFactory())
    older = place(user, products, "a")
    place(stranger, products, "b")
    newer = place(user, products[:1], "c")

    response = auth_client.get(ORDERS)

    assert response.status_code == 200
    body = response.json()
    assert (body["next"], body["previous"]) == (None, None)
    assert body["results"] == [
        {
            "id": newer.pk,
            "status": "pending",
            "status_reason": "",
            "total": "1.50",
            "created_at": iso(newer.created_at),
            "lines": [
                {
                    "product_id": products[0].pk,
                    "quantity": 1,
                    "unit_price": "1.50",
                    "subtotal": "1.50",
                }
            ],
        },
        {
            "id": older.pk,
            "status": "pending",
            "status_reason": "",
            "total": "5.50",
            "created_at": iso(older.created_at),
            "lines": [
                {
                    "product_id": products[0].pk,
                    "quantity": 1,
                    "unit_price": "1.50",
                    "subtotal": "1.50",
                },
                {
                    "product_id": products[1].pk,
                    "quantity": 2,
                    "unit_price": "2.00",
                    "subtotal": "4.00",
                },
            ],
        },
    ]


def test_order_list_pages_walk_every_order_once_newest_first(
    auth_client, user, product, django_assert_num_queries
):
    ids = [place(user, [product], f"k{n}").pk for n in range(5)]
    # Each page costs the token lookup, the orders and their lines; only the first request
    # of a user also records last_active.
    auth_client.get(f"{ORDERS}/{ids[0]}")

    pages = walk(auth_client, f"{ORDERS}?limit=2", django_assert_num_queries, per_page=3)

    assert pages == [[ids[4], ids[3]], [ids[2], ids[1]], [ids[0]]]


@pytest.mark.parametrize("orders", [3, 30])
def test_order_list_query_count_does_not_grow_with_orders_or_lines(
    orders, db, django_assert_num_queries
):
    products = [make_product("1.00"), make_product("2.00")]
    owner = cast(User, UserFactory())
    for n in range(orders):
        place(owner, products, f"k{n}")
    client = client_for(owner)
    # The first request also writes last_active and the token's last_used_at and loads
    # the caller's rate-limit overrides, each then kept for its interval.
    assert client.get(ORDERS).status_code == 200

    # Token lookup, orders, their lines.
    with django_assert_num_queries(3):
        response = client.get(ORDERS)

    assert response.status_code == 200
    results = response.json()["results"]
    assert len(results) == orders
    assert sum(len(order["lines"]) for order in results) == 2 * orders


def test_order_detail_returns_the_callers_order(auth_client, user, product):
    order = place(user, [product], "k")

    response = auth_client.get(f"{ORDERS}/{order.pk}")

    assert response.status_code == 200
    assert response.json() == {
        "id": order.pk,
        "status": "pending",
        "status_reason": "",
        "total": "9.99",
        "created_at": iso(order.created_at),
        "lines": [
            {"product_id": product.pk, "quantity": 1, "unit_price": "9.99", "subtotal": "9.99"}
        ],
    }


def test_another_users_order_is_a_json_404(auth_client, product):
    theirs = place(cast(User, UserFactory()), [product], "k")

    response = auth_client.get(f"{ORDERS}/{theirs.pk}")

    assert response.status_code == 404
    assert response["Content-Type"] == "application/json"
    assert response.json() == {"detail": "Order not found."}


@pytest.mark.parametrize("path", [ORDERS, f"{ORDERS}/1"])
def test_orders_are_not_readable_anonymously(api_client, db, path):
    response = api_client.get(path)

    assert response.status_code == 401
    assert response.json() == {"detail": "Authentication credentials were not provided."}
