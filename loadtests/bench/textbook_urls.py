"""Bench-only routes of the textbook peer (``loadtests.bench.textbook_settings``).

The two operations the bench compares, written as the DRF and django-ratelimit
documentation shows them, on highscale's models and paths:

- ``GET /api/v1/users/{id}``: an ``APIView`` that reads ``cache.get(f"user:{id}")``
  through django-redis, filling it from the database on a miss, behind
  ``@ratelimit(key="ip")``;
- ``POST /api/v1/orders``: a ``CreateAPIView`` whose nested ``ModelSerializer`` creates
  the order and its lines in one ``atomic()``; no idempotency, no outbox, no limit.
"""

from __future__ import annotations

import uuid
from typing import Any

from django.conf import settings
from django.core.cache import cache
from django.db import transaction
from django.http import HttpRequest, JsonResponse
from django.shortcuts import get_object_or_404
from django.urls import include, path
from django.utils.decorators import method_decorator
from django_ratelimit.decorators import (  # type: ignore[import-untyped]  # ships no types
    ratelimit,
)
from rest_framework import generics, serializers
from rest_framework.permissions import AllowAny, IsAuthenticated
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from apps.orders.models import Order, OrderLine, Product
from apps.users.models import User

PROFILE_TTL_SECONDS = 3600


def ratelimited(request: HttpRequest, exception: Exception) -> JsonResponse:
    """Answer a request django-ratelimit refused (its ``RATELIMIT_VIEW``)."""
    return JsonResponse({"detail": "Too many requests."}, status=429)


def healthz(request: HttpRequest) -> JsonResponse:
    """Answer 200: the server is up."""
    return JsonResponse({"status": "ok"})


def profile_rate(group: str, request: HttpRequest) -> str:
    """Return the profile read's django-ratelimit rate from the settings (lifted if unset)."""
    return str(getattr(settings, "BENCH_TEXTBOOK_RATE", "1000000000/m"))


class PublicProfileSerializer(serializers.ModelSerializer[User]):
    class Meta:
        model = User
        fields = ["id", "username", "display_name", "date_joined"]


@method_decorator(ratelimit(key="ip", rate=profile_rate, block=True), name="dispatch")
class PublicProfileApi(APIView):
    """Return a user's public profile from the cache, filled from the database on a miss."""

    permission_classes = [AllowAny]

    def get(self, request: Request, user_id: int) -> Response:
        key = f"user:{user_id}"
        profile = cache.get(key)
        if profile is None:
            user = get_object_or_404(User, pk=user_id)
            profile = dict(PublicProfileSerializer(user).data)
            cache.set(key, profile, PROFILE_TTL_SECONDS)
        return Response(profile)


class OrderLineSerializer(serializers.ModelSerializer[OrderLine]):
    product_id = serializers.PrimaryKeyRelatedField(
        source="product", queryset=Product.objects.all()
    )

    class Meta:
        model = OrderLine
        fields = ["product_id", "quantity", "unit_price"]
        read_only_fields = ["unit_price"]


class OrderSerializer(serializers.ModelSerializer[Order]):
    items = OrderLineSerializer(many=True, source="lines")

    class Meta:
        model = Order
        fields = ["id", "status", "total", "created_at", "items"]
        read_only_fields = ["id", "status", "total", "created_at"]

    def create(self, validated_data: dict[str, Any]) -> Order:
        """Create the order and its lines, priced from the products, in one transaction."""
        lines = validated_data.pop("lines")
        with transaction.atomic():
            order = Order.objects.create(
                total=sum(line["product"].price * line["quantity"] for line in lines),
                # The model requires a key; the textbook peer has no idempotency, so any
                # unique value will do.
                idempotency_key=uuid.uuid4().hex,
                **validated_data,
            )
            OrderLine.objects.bulk_create(
                OrderLine(order=order, owner=order.owner, unit_price=line["product"].price, **line)
                for line in lines
            )
        return order


class OrderCreateApi(generics.CreateAPIView[Order]):
    """Place an order for the authenticated user."""

    serializer_class = OrderSerializer
    permission_classes = [IsAuthenticated]

    def perform_create(self, serializer: serializers.BaseSerializer[Order]) -> None:
        serializer.save(owner=self.request.user)


urlpatterns = [
    path("api/v1/users/<int:user_id>", PublicProfileApi.as_view()),
    path("api/v1/orders", OrderCreateApi.as_view()),
    path("healthz", healthz),
    path("", include("django_prometheus.urls")),
]
