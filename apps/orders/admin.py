"""Admin of the catalogue and the orders: every state change goes through a service.

An order's status is read-only (a hand-set ``confirmed`` would skip the stock and the
events); the cancel action calls ``order_cancel``. A product's stock changes by an
adjustment that ``product_stock_adjust`` applies, never by saving a stock value read
before a reservation took some.
"""

from __future__ import annotations

from typing import Any

from django import forms
from django.contrib import admin, messages
from django.db.models import QuerySet
from django.http import HttpRequest

from apps.core.admin_selection import CheckedSelectionAdmin
from apps.core.http.errors import ApplicationError
from apps.orders.admin_keyset import KeysetChangeList, KeysetPaginator, cursor_of
from apps.orders.models import Order, OrderLine, Product
from apps.orders.services import order_cancel, product_stock_adjust


class ProductForm(forms.ModelForm[Product]):
    """A product's fields, plus the signed number of units to add to its stock."""

    stock_change = forms.IntegerField(
        required=False,
        label="Add to stock",
        help_text="Units to add (negative to remove), applied to the stock as it is then.",
    )

    class Meta:
        model = Product
        fields = ("sku", "name", "price", "stock")

    def clean_stock_change(self) -> int | None:
        change: int | None = self.cleaned_data.get("stock_change")
        # A friendly early refusal; the conditional UPDATE is what guarantees it.
        if change and self.instance.pk is not None and self.instance.stock + change < 0:
            raise forms.ValidationError(f"Only {self.instance.stock} in stock.")
        return change


@admin.register(Product)
class ProductAdmin(CheckedSelectionAdmin[Product]):
    form = ProductForm
    list_display = ("sku", "name", "price", "stock", "updated_at")
    search_fields = ("sku", "name")
    ordering = ("sku",)

    def get_readonly_fields(self, request: HttpRequest, obj: Product | None = None) -> Any:
        # A new product starts with the stock typed in; after that, only adjustments.
        return ("stock", "updated_at") if obj is not None else ()

    def get_fields(self, request: HttpRequest, obj: Product | None = None) -> Any:
        if obj is None:
            return ("sku", "name", "price", "stock")
        return ("sku", "name", "price", "stock", "stock_change", "updated_at")

    def save_model(self, request: HttpRequest, obj: Product, form: Any, change: bool) -> None:
        if not change:
            super().save_model(request, obj, form, change)
            return
        edited = [name for name in form.changed_data if name in {"sku", "name", "price"}]
        if edited:
            # Only the edited columns: a full save would write back a stale stock.
            obj.save(update_fields=[*edited, "updated_at"])
        by = form.cleaned_data.get("stock_change")
        if by:
            try:
                obj.stock = product_stock_adjust(product_id=obj.pk, by=by)
            except ApplicationError as exc:
                self.message_user(request, exc.detail, messages.ERROR)


class OrderLineInline(admin.TabularInline[OrderLine, Order]):
    model = OrderLine
    extra = 0
    fields = ("product", "quantity", "unit_price")
    readonly_fields = fields
    raw_id_fields = ("product",)
    can_delete = False

    def has_add_permission(self, request: object, obj: Order | None = None) -> bool:
        return False


@admin.register(Order)
class OrderAdmin(CheckedSelectionAdmin[Order]):
    list_display = ("id", "owner", "status", "total", "created_at")
    list_filter = ("status", "created_at")
    search_fields = ("owner__username", "idempotency_key")
    list_select_related = ("owner",)
    # Keyset pages, newest first (apps/orders/admin_keyset.py): no OFFSET, no count(*),
    # no "show all", and no column sorting that a cursor on ids could not follow. No
    # date_hierarchy either: its MIN/MAX and DISTINCT dates read every order of every
    # shard; the created_at list filter (plain WHERE ranges) does that job.
    ordering = ("-id",)
    sortable_by = ()
    show_full_result_count = False
    list_max_show_all = 0
    fields = (
        "owner",
        "status",
        "status_reason",
        "total",
        "idempotency_key",
        "created_at",
        "updated_at",
    )
    readonly_fields = fields
    inlines = (OrderLineInline,)
    actions = ("cancel",)

    def get_changelist(self, request: HttpRequest, **kwargs: Any) -> type[KeysetChangeList]:
        return KeysetChangeList

    def get_paginator(
        self,
        request: HttpRequest,
        queryset: QuerySet[Order],
        per_page: int,
        orphans: int = 0,
        allow_empty_first_page: bool = True,
    ) -> KeysetPaginator:
        return KeysetPaginator(queryset, per_page, before_id=cursor_of(request.GET))

    # Orders are placed through the API and change only through services: the admin
    # neither adds, edits nor deletes them (deleting a confirmed one would lose stock).
    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: Order | None = None) -> bool:
        return False

    def has_delete_permission(self, request: HttpRequest, obj: Order | None = None) -> bool:
        return False

    def has_cancel_permission(self, request: HttpRequest) -> bool:
        return request.user.has_perm("orders.change_order")

    @admin.action(
        description="Cancel the selected orders (gives confirmed stock back)",
        permissions=("cancel",),
    )
    def cancel(self, request: HttpRequest, queryset: QuerySet[Order]) -> None:
        cancelled = 0
        for pk in queryset.order_by("pk").values_list("pk", flat=True):
            try:
                order_cancel(order_id=pk, reason=f"Cancelled in the admin by {request.user}.")
            except ApplicationError as exc:
                self.message_user(request, exc.detail, messages.WARNING)
            else:
                cancelled += 1
        self.message_user(request, f"{cancelled} order(s) cancelled.", messages.SUCCESS)
