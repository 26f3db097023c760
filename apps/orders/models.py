"""The catalogue and the orders placed against it."""

from __future__ import annotations

from decimal import Decimal
from typing import Any

from django.conf import settings
from django.core.validators import MinValueValidator
from django.db import models
from django.db.models import Q
from django_prometheus.models import ExportModelOperationsMixin


class Product(ExportModelOperationsMixin("product"), models.Model):  # type: ignore[misc]  # untyped mixin factory
    """A product that can be ordered; stock can never go below zero."""

    sku = models.CharField(max_length=64, unique=True)
    name = models.CharField(max_length=200)
    price = models.DecimalField(
        max_digits=10, decimal_places=2, validators=[MinValueValidator(Decimal("0.00"))]
    )
    stock = models.IntegerField(default=0, validators=[MinValueValidator(0)])
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        constraints = [
            models.CheckConstraint(condition=Q(stock__gte=0), name="orders_product_stock_gte_0"),
            models.CheckConstraint(condition=Q(price__gte=0), name="orders_product_price_gte_0"),
        ]

    def __str__(self) -> str:
        return f"{self.sku} {self.name}"


class Order(ExportModelOperationsMixin("order"), models.Model):  # type: ignore[misc]  # untyped mixin factory
    """An order of one owner; its total is computed from product prices server-side."""

    class Status(models.TextChoices):
        PENDING = "pending", "Pending"
        CONFIRMED = "confirmed", "Confirmed"
        REJECTED = "rejected", "Rejected"
        # Only through ``order_cancel``, which gives a confirmed order's stock back.
        CANCELLED = "cancelled", "Cancelled"

    owner = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.PROTECT, related_name="orders"
    )
    status = models.CharField(max_length=16, choices=Status.choices, default=Status.PENDING)
    status_reason = models.CharField(max_length=255, blank=True)
    total = models.DecimalField(max_digits=14, decimal_places=2)
    idempotency_key = models.CharField(max_length=255)
    created_at = models.DateTimeField(auto_now_add=True, db_index=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        constraints = [
            models.UniqueConstraint(
                fields=["owner", "idempotency_key"], name="orders_order_owner_idempotency_key"
            ),
            models.CheckConstraint(condition=Q(total__gte=0), name="orders_order_total_gte_0"),
        ]
        indexes = [models.Index(fields=["owner", "-id"], name="orders_order_owner_id_desc")]

    def __str__(self) -> str:
        return f"order {self.pk} ({self.status})"


class OrderLine(ExportModelOperationsMixin("orderline"), models.Model):  # type: ignore[misc]  # untyped mixin factory
    """One product and quantity of an order, at the price it was ordered for."""

    order = models.ForeignKey(Order, on_delete=models.CASCADE, related_name="lines")
    # The order's owner, copied: with sharding the line is partitioned by it, so it
    # lives on its order's shard (docs/sharding.md).
    owner = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.PROTECT, related_name="+", db_index=False
    )
    product = models.ForeignKey(Product, on_delete=models.PROTECT, related_name="order_lines")
    quantity = models.PositiveIntegerField()
    unit_price = models.DecimalField(max_digits=10, decimal_places=2)

    class Meta:
        constraints = [
            models.CheckConstraint(condition=Q(quantity__gte=1), name="orders_line_quantity_gte_1"),
            models.UniqueConstraint(fields=["order", "product"], name="orders_line_order_product"),
        ]

    def __str__(self) -> str:
        return f"{self.quantity} × {self.product_id}"

    def save(self, *args: Any, **kwargs: Any) -> None:
        """Save the line; its owner, when not set, is its order's."""
        if self.owner_id is None and self.order_id is not None:
            self.owner_id = self.order.owner_id
        super().save(*args, **kwargs)

    @property
    def subtotal(self) -> Decimal:
        """Return quantity × unit price."""
        return self.unit_price * self.quantity
