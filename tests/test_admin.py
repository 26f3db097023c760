"""The Django admin for users, products and orders, as a staff member uses it (test client)."""

from __future__ import annotations

from decimal import Decimal
from typing import Any, cast

import pytest
from django.contrib import admin
from django.db import connection
from django.test import Client
from django.test.utils import CaptureQueriesContext

from apps.core.admin_selection import NOT_ITEMS
from apps.core.events.models import OutboxEvent
from apps.orders.events import ORDER_CANCELLED, order_reserve_inventory
from apps.orders.models import Order, OrderLine, Product
from apps.orders.services import OrderItem, order_create
from apps.users.models import User
from tests.factories import ProductFactory, UserFactory

pytestmark = pytest.mark.django_db


def _user(**fields: Any) -> User:
    return cast(User, UserFactory(**fields))


def _product(**fields: Any) -> Product:
    return cast(Product, ProductFactory(**fields))


@pytest.fixture
def staff_client(client: Client) -> Client:
    admin_user = _user(username="root", is_staff=True, is_superuser=True)
    client.force_login(admin_user)
    return client


@pytest.fixture
def order(user: User, product: Product) -> Order:
    """Return a pending order of ``user``: 3 × ``product`` and 1 × another product."""
    other = _product(price=Decimal("5.00"))
    return order_create(
        owner_id=user.pk,
        items=[OrderItem(product.pk, 3), OrderItem(other.pk, 1)],
        idempotency_key="admin-test-order",
    )


def _result_ids(response: Any) -> set[int]:
    return {obj.pk for obj in response.context["cl"].result_list}


@pytest.mark.parametrize(
    "url", ["/admin/users/user/", "/admin/orders/product/", "/admin/orders/order/"]
)
def test_changelists_render_for_staff(staff_client, user, order, url):
    response = staff_client.get(url)

    assert response.status_code == 200
    assert response.context["cl"].result_count >= 1


def test_user_change_page_renders_for_staff(staff_client, user):
    response = staff_client.get(f"/admin/users/user/{user.pk}/change/")

    assert response.status_code == 200
    assert response.context["original"] == user


def test_product_change_page_renders_for_staff(staff_client, product):
    response = staff_client.get(f"/admin/orders/product/{product.pk}/change/")

    assert response.status_code == 200
    assert response.context["original"] == product


def test_order_change_page_shows_its_lines(staff_client, order):
    response = staff_client.get(f"/admin/orders/order/{order.pk}/change/")

    assert response.status_code == 200
    assert response.context["original"] == order
    inline = response.context["inline_admin_formsets"][0]
    shown = {form.original.pk for form in inline}
    assert shown == set(OrderLine.objects.filter(order=order).values_list("pk", flat=True))
    assert len(shown) == 2


def test_user_search_finds_by_username_and_by_email(staff_client):
    wanted = _user(username="searchable", email="findme@example.net")
    _user(username="bystander", email="bystander@example.com")

    by_username = staff_client.get("/admin/users/user/", {"q": "searchable"})
    by_email = staff_client.get("/admin/users/user/", {"q": "findme@example.net"})

    assert _result_ids(by_username) == {wanted.pk}
    assert _result_ids(by_email) == {wanted.pk}


def test_order_changelist_filters_by_status(staff_client, user, product):
    pending = order_create(
        owner_id=user.pk, items=[OrderItem(product.pk, 1)], idempotency_key="k-pending"
    )
    confirmed = order_create(
        owner_id=user.pk, items=[OrderItem(product.pk, 2)], idempotency_key="k-confirmed"
    )
    Order.objects.filter(pk=confirmed.pk).update(status=Order.Status.CONFIRMED)

    only_confirmed = staff_client.get("/admin/orders/order/", {"status__exact": "confirmed"})
    only_pending = staff_client.get("/admin/orders/order/", {"status__exact": "pending"})

    assert only_confirmed.status_code == 200
    assert _result_ids(only_confirmed) == {confirmed.pk}
    assert _result_ids(only_pending) == {pending.pk}


def test_order_changelist_pages_by_keyset_with_filters_kept_and_no_count(
    staff_client, user, product, monkeypatch
):
    placed = [
        order_create(owner_id=user.pk, items=[OrderItem(product.pk, 1)], idempotency_key=f"k{n}")
        for n in range(5)
    ]
    other = order_create(owner_id=user.pk, items=[OrderItem(product.pk, 2)], idempotency_key="x")
    Order.objects.filter(pk=other.pk).update(status=Order.Status.CONFIRMED)
    monkeypatch.setattr(admin.site.get_model_admin(Order), "list_per_page", 2)

    pages: list[list[int]] = []
    url: str | None = "/admin/orders/order/?status__exact=pending"
    with CaptureQueriesContext(connection) as captured:
        while url is not None:
            response = staff_client.get(url)
            assert response.status_code == 200
            changelist = response.context["cl"]
            pages.append([order.pk for order in changelist.result_list])
            older = changelist.older_query_string()
            url = f"/admin/orders/order/{older}" if older else None

    assert pages == [
        [placed[4].pk, placed[3].pk],
        [placed[2].pk, placed[1].pk],
        [placed[0].pk],
    ]
    assert b'class="keyset-newest"' in response.content
    orders_sql = [
        q["sql"].upper() for q in captured.captured_queries if "ORDERS_ORDER" in q["sql"].upper()
    ]
    assert orders_sql
    assert not [sql for sql in orders_sql if "OFFSET" in sql or "COUNT(" in sql]


def test_order_changelist_refuses_page_numbers_and_bad_cursors_without_a_500(
    staff_client, order, product, monkeypatch
):
    order_create(owner_id=order.owner_id, items=[OrderItem(product.pk, 1)], idempotency_key="2nd")
    monkeypatch.setattr(admin.site.get_model_admin(Order), "list_per_page", 1)
    for params in ({"p": "2"}, {"id__lt": "abc"}):
        response = staff_client.get("/admin/orders/order/", params)
        assert response.status_code == 302, params
        assert response["Location"].endswith("?e=1"), params

    show_all = staff_client.get("/admin/orders/order/", {"all": ""})
    assert show_all.status_code == 200
    assert show_all.context["cl"].can_show_all is False


def _product_post(product: Product, **fields: str) -> dict[str, str]:
    data = {"sku": product.sku, "name": product.name, "price": str(product.price)}
    return {**data, "stock_change": "", "_save": "Save", **fields}


def test_product_stock_is_adjusted_on_the_change_page(staff_client):
    product = _product(sku="A-001", name="Old name", stock=10)

    response = staff_client.post(
        f"/admin/orders/product/{product.pk}/change/",
        _product_post(product, name="New name", stock_change="32"),
    )

    assert response.status_code == 302
    product.refresh_from_db()
    assert (product.name, product.stock) == ("New name", 42)


def test_product_stock_is_not_an_editable_field_once_the_product_exists(staff_client, product):
    change = staff_client.get(f"/admin/orders/product/{product.pk}/change/")
    add = staff_client.get("/admin/orders/product/add/")

    assert set(change.context["adminform"].form.fields) == {"sku", "name", "price", "stock_change"}
    assert "stock" in set(add.context["adminform"].form.fields)
    assert staff_client.get("/admin/orders/product/").context["cl"].list_editable == ()


def test_a_stock_value_posted_to_the_change_page_is_ignored(staff_client):
    product = _product(sku="A-001", stock=10)

    response = staff_client.post(
        f"/admin/orders/product/{product.pk}/change/", _product_post(product, stock="999")
    )

    assert response.status_code == 302
    product.refresh_from_db()
    assert product.stock == 10


def test_removing_more_stock_than_is_left_is_refused_on_the_change_page(staff_client):
    product = _product(sku="A-001", name="Old name", stock=10)

    response = staff_client.post(
        f"/admin/orders/product/{product.pk}/change/",
        _product_post(product, name="Renamed", stock_change="-11"),
    )

    assert response.status_code == 200
    assert response.context["adminform"].form.errors == {"stock_change": ["Only 10 in stock."]}
    product.refresh_from_db()
    assert (product.name, product.stock) == ("Old name", 10)


def test_order_change_page_is_read_only_and_a_post_changes_nothing(staff_client, order):
    page = staff_client.get(f"/admin/orders/order/{order.pk}/change/")
    assert page.status_code == 200
    assert set(page.context["adminform"].form.fields) == set()

    response = staff_client.post(
        f"/admin/orders/order/{order.pk}/change/",
        {"status": "confirmed", "status_reason": "checked by hand", "total": "0.01"},
    )

    assert response.status_code == 403
    order.refresh_from_db()
    assert (order.status, order.status_reason) == ("pending", "")
    assert order.total == Decimal("34.97")


def test_orders_cannot_be_added_or_deleted_in_the_admin(staff_client, order):
    assert staff_client.get("/admin/orders/order/add/").status_code == 403
    assert staff_client.post(f"/admin/orders/order/{order.pk}/delete/").status_code == 403
    assert Order.objects.filter(pk=order.pk).exists()


def test_the_cancel_action_cancels_through_the_service(staff_client, order, product):
    order_reserve_inventory(event_id="00000000-0000-0000-0000-0000000000a1", order_id=order.pk)
    assert Product.objects.get(pk=product.pk).stock == 97
    rejected = order_create(
        owner_id=order.owner_id, items=[OrderItem(product.pk, 1)], idempotency_key="k-rejected"
    )
    Order.objects.filter(pk=rejected.pk).update(status=Order.Status.REJECTED)

    response = staff_client.post(
        "/admin/orders/order/",
        {"action": "cancel", "_selected_action": [str(order.pk), str(rejected.pk)], "index": "0"},
        follow=True,
    )

    assert response.status_code == 200
    assert [str(m) for m in response.context["messages"]] == [
        f"Order {rejected.pk} is rejected; only pending or confirmed cancel.",
        "1 order(s) cancelled.",
    ]
    order.refresh_from_db()
    assert (order.status, order.status_reason) == ("cancelled", "Cancelled in the admin by root.")
    assert Product.objects.get(pk=product.pk).stock == 100
    assert OutboxEvent.objects.filter(event_type=ORDER_CANCELLED).count() == 1


@pytest.mark.parametrize("url", ["/admin/", "/admin/orders/order/", "/admin/users/user/"])
def test_non_staff_user_is_redirected_to_the_admin_login(client, user, url):
    client.force_login(user)

    response = client.get(url)

    assert response.status_code == 302
    assert response["Location"] == f"/admin/login/?next={url}"


@pytest.mark.parametrize("url", ["/admin/", "/admin/orders/product/"])
def test_anonymous_visitor_is_redirected_to_the_admin_login(client, url):
    response = client.get(url)

    assert response.status_code == 302
    assert response["Location"] == f"/admin/login/?next={url}"


def test_non_staff_user_cannot_change_stock_in_the_admin(client, user):
    product = _product(sku="A-001", stock=10)
    client.force_login(user)
    url = f"/admin/orders/product/{product.pk}/change/"

    response = client.post(url, _product_post(product, stock_change="999"))

    assert response.status_code == 302
    assert response["Location"] == f"/admin/login/?next={url}"
    product.refresh_from_db()
    assert product.stock == 10


# Read-only: it offers no actions at all.
_WITHOUT_ACTIONS = {"/admin/core/outboxevent/"}


def _admin_changelists() -> list[str]:
    """Return the changelist of every registered model that has actions."""
    urls = {
        f"/admin/{model._meta.app_label}/{model._meta.model_name}/"
        for model in admin.site._registry
    }
    return sorted(urls - _WITHOUT_ACTIONS)


@pytest.mark.parametrize("url", _admin_changelists())
@pytest.mark.parametrize("selected", ["abc", "\x00", "1.5"])
def test_an_action_on_a_forged_selection_is_refused_with_a_message_not_a_500(
    staff_client, product, url, selected
):
    response = staff_client.post(
        url, {"action": "delete_selected", "_selected_action": [selected], "index": "0"}
    )

    assert response.status_code == 302
    assert response["Location"] == url
    followed = staff_client.get(url)
    assert NOT_ITEMS in [str(message) for message in followed.context["messages"]]
    assert Product.objects.filter(pk=product.pk).exists()


def test_an_action_on_a_real_selection_still_runs(staff_client):
    doomed = _product()

    response = staff_client.post(
        "/admin/orders/product/",
        {"action": "delete_selected", "_selected_action": [str(doomed.pk)], "post": "yes"},
    )

    assert response.status_code == 302
    assert not Product.objects.filter(pk=doomed.pk).exists()
