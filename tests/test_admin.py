"""The Django admin for users, products and orders, as a staff member uses it."""

from __future__ import annotations

from decimal import Decimal
from typing import Any, cast

import pytest
from django.test import Client

from apps.core.admin_selection import NOT_ITEMS
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


def _changelist_post(products: list[Product], stock: dict[int, str]) -> dict[str, str]:
    data = {
        "form-TOTAL_FORMS": str(len(products)),
        "form-INITIAL_FORMS": str(len(products)),
        "form-MIN_NUM_FORMS": "0",
        "form-MAX_NUM_FORMS": "1000",
        "_save": "Save",
    }
    for index, product in enumerate(products):
        data[f"form-{index}-id"] = str(product.pk)
        data[f"form-{index}-stock"] = stock.get(product.pk, str(product.stock))
    return data


def test_product_stock_is_editable_from_the_changelist(staff_client):
    first = _product(sku="A-001", stock=10)
    second = _product(sku="B-002", stock=20)

    response = staff_client.post(
        "/admin/orders/product/", _changelist_post([first, second], {first.pk: "42"})
    )

    assert response.status_code == 302
    assert response["Location"] == "/admin/orders/product/"
    first.refresh_from_db()
    second.refresh_from_db()
    assert first.stock == 42
    assert second.stock == 20


def test_negative_stock_is_refused_in_the_changelist(staff_client):
    product = _product(sku="A-001", stock=10)

    response = staff_client.post(
        "/admin/orders/product/", _changelist_post([product], {product.pk: "-1"})
    )

    assert response.status_code == 200
    assert response.context["cl"].formset.errors == [
        {"stock": ["Ensure this value is greater than or equal to 0."]}
    ]
    product.refresh_from_db()
    assert product.stock == 10


def test_order_total_is_read_only_on_the_change_page(staff_client, order):
    original_total = order.total
    lines = list(OrderLine.objects.filter(order=order).order_by("pk"))

    page = staff_client.get(f"/admin/orders/order/{order.pk}/change/")
    form_fields = set(page.context["adminform"].form.fields)
    assert "total" not in form_fields
    assert "status" in form_fields

    data = {
        "status": "confirmed",
        "status_reason": "checked by hand",
        "total": "0.01",
        "lines-TOTAL_FORMS": str(len(lines)),
        "lines-INITIAL_FORMS": str(len(lines)),
        "lines-MIN_NUM_FORMS": "0",
        "lines-MAX_NUM_FORMS": "1000",
        "_save": "Save",
    }
    for index, line in enumerate(lines):
        data[f"lines-{index}-id"] = str(line.pk)
        data[f"lines-{index}-order"] = str(order.pk)
    response = staff_client.post(f"/admin/orders/order/{order.pk}/change/", data)

    assert response.status_code == 302
    order.refresh_from_db()
    assert order.status == Order.Status.CONFIRMED
    assert order.status_reason == "checked by hand"
    assert order.total == original_total == Decimal("34.97")


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


def test_non_staff_user_cannot_change_stock_from_the_changelist(client, user):
    product = _product(sku="A-001", stock=10)
    client.force_login(user)

    response = client.post(
        "/admin/orders/product/", _changelist_post([product], {product.pk: "999"})
    )

    assert response.status_code == 302
    assert response["Location"] == "/admin/login/?next=/admin/orders/product/"
    product.refresh_from_db()
    assert product.stock == 10


# Read-only: it offers no actions at all.
_WITHOUT_ACTIONS = {"/admin/core/outboxevent/"}


def _admin_changelists() -> list[str]:
    """Return the changelist of every registered model that has actions."""
    from django.contrib import admin

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
