from django.contrib import admin

from apps.core.admin_selection import CheckedSelectionAdmin
from apps.orders.models import Order, OrderLine, Product


@admin.register(Product)
class ProductAdmin(CheckedSelectionAdmin[Product]):
    list_display = ("sku", "name", "price", "stock", "updated_at")
    list_editable = ("stock",)
    search_fields = ("sku", "name")
    ordering = ("sku",)


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
    date_hierarchy = "created_at"
    search_fields = ("owner__username", "idempotency_key")
    list_select_related = ("owner",)
    readonly_fields = ("owner", "total", "idempotency_key", "created_at", "updated_at")
    fields = (
        "owner",
        "status",
        "status_reason",
        "total",
        "idempotency_key",
        "created_at",
        "updated_at",
    )
    inlines = (OrderLineInline,)
