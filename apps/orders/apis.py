"""HTTP API of the catalogue and of orders."""

from __future__ import annotations

from django.conf import settings
from django.http import HttpResponse
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiParameter, extend_schema
from rest_framework import serializers
from rest_framework.permissions import AllowAny, IsAuthenticated
from rest_framework.request import Request
from rest_framework.response import Response

from apps.core.http.api import (
    MAX_ID,
    error_responses,
    id_path_parameter,
    request_user_id,
    validated,
)
from apps.core.http.fields import StrictIntegerField
from apps.core.http.idempotency import (
    IDEMPOTENCY_HEADER,
    MAX_KEY_LENGTH,
    request_fingerprint,
    run_idempotent,
    validate_idempotency_key,
)
from apps.core.http.pagination import NewestFirstCursorPagination, OldestFirstCursorPagination
from apps.orders.models import Order, OrderLine, Product
from apps.orders.selectors import order_get, order_list, product_get, product_list
from apps.orders.services import MAX_LINE_QUANTITY, MAX_ORDER_LINES, OrderItem, order_create
from apps.ratelimit.views import RateLimitedApiView


class ProductOutput(serializers.ModelSerializer[Product]):
    class Meta:
        model = Product
        fields = ["id", "sku", "name", "price", "stock"]
        read_only_fields = fields


class OrderLineOutput(serializers.ModelSerializer[OrderLine]):
    subtotal = serializers.DecimalField(max_digits=14, decimal_places=2, read_only=True)

    class Meta:
        model = OrderLine
        fields = ["product_id", "quantity", "unit_price", "subtotal"]
        read_only_fields = fields


class OrderOutput(serializers.ModelSerializer[Order]):
    lines = OrderLineOutput(many=True, read_only=True, source="line_list")

    class Meta:
        model = Order
        fields = ["id", "status", "status_reason", "total", "created_at", "lines"]
        read_only_fields = fields


class OrderItemInput(serializers.Serializer[None]):
    product_id = StrictIntegerField(min_value=1, max_value=MAX_ID)
    quantity = StrictIntegerField(min_value=1, max_value=MAX_LINE_QUANTITY)


class OrderCreateInput(serializers.Serializer[None]):
    items = serializers.ListField(child=OrderItemInput(), min_length=1, max_length=MAX_ORDER_LINES)


class ProductListApi(RateLimitedApiView):
    permission_classes = [AllowAny]
    pagination_class = OldestFirstCursorPagination

    @extend_schema(
        responses={200: ProductOutput(many=True), **error_responses(400, 404)},
        operation_id="products_list",
    )
    def get(self, request: Request) -> Response:
        paginator = self.pagination_class()
        page = paginator.paginate_queryset(product_list(), request, view=self)
        response = paginator.get_paginated_response(ProductOutput(page, many=True).data)
        response["Cache-Control"] = catalogue_cache_control()
        return response


class ProductDetailApi(RateLimitedApiView):
    permission_classes = [AllowAny]

    @extend_schema(
        responses={200: ProductOutput, **error_responses(404)},
        parameters=[id_path_parameter("product_id")],
        operation_id="products_retrieve",
    )
    def get(self, request: Request, product_id: int) -> Response:
        product = product_get(product_id=product_id)
        return Response(
            ProductOutput(product).data, headers={"Cache-Control": catalogue_cache_control()}
        )


def catalogue_cache_control() -> str:
    """Return the ``Cache-Control`` of the product list and detail."""
    # The edge cannot be told that a price or stock changed, so its copy lives only
    # s-maxage seconds and is never served stale (deploy/nginx/nginx.conf). nginx sends
    # no Age, so browsers get max-age=0: a copy of a copy would double the bound.
    max_age = settings.PRODUCT_HTTP_MAX_AGE_SECONDS
    return f"public, max-age=0, s-maxage={max_age}"


class OrdersApi(RateLimitedApiView):
    """List the caller's orders (GET) or place one (POST)."""

    permission_classes = [IsAuthenticated]
    pagination_class = NewestFirstCursorPagination

    @extend_schema(
        responses={200: OrderOutput(many=True), **error_responses(400, 401, 404)},
        operation_id="orders_list",
    )
    def get(self, request: Request) -> Response:
        paginator = self.pagination_class()
        page = paginator.paginate_queryset(
            order_list(owner_id=request_user_id(request)), request, view=self
        )
        return paginator.get_paginated_response(OrderOutput(page, many=True).data)

    @extend_schema(
        request=OrderCreateInput,
        responses={201: OrderOutput, **error_responses(400, 401, 409, 422)},
        parameters=[
            OpenApiParameter(
                IDEMPOTENCY_HEADER,
                {"type": "string", "minLength": 1, "maxLength": MAX_KEY_LENGTH},
                OpenApiParameter.HEADER,
                required=True,
                pattern=r"^[ -~]*[!-~][ -~]*$",
                description="Client-chosen key; a retry with the same key and body replays "
                "the first response.",
            ),
            OpenApiParameter(
                "Idempotent-Replayed",
                OpenApiTypes.STR,
                OpenApiParameter.HEADER,
                enum=["true"],
                response=[201],
                description="Present when the response replays the first one for this key.",
            ),
        ],
        operation_id="orders_create",
    )
    def post(self, request: Request) -> HttpResponse:
        key = validate_idempotency_key(request.headers.get(IDEMPOTENCY_HEADER))
        data = validated(OrderCreateInput, request.data)
        items = [OrderItem(**item) for item in data["items"]]
        owner_id = request_user_id(request)

        def place() -> tuple[int, object]:
            order = order_create(owner_id=owner_id, items=items, idempotency_key=key)
            return 201, OrderOutput(order).data

        result = run_idempotent(
            owner_id=owner_id,
            scope="orders.create",
            key=key,
            fingerprint=request_fingerprint(request.data),
            action=place,
        )
        headers = {"Idempotent-Replayed": "true"} if result.replayed else {}
        # The stored bytes, first time and every replay alike.
        return HttpResponse(
            result.body, status=result.status, content_type=result.content_type, headers=headers
        )


class OrderDetailApi(RateLimitedApiView):
    permission_classes = [IsAuthenticated]

    @extend_schema(
        responses={200: OrderOutput, **error_responses(401, 404)},
        parameters=[id_path_parameter("order_id")],
        operation_id="orders_retrieve",
    )
    def get(self, request: Request, order_id: int) -> Response:
        order = order_get(owner_id=request_user_id(request), order_id=order_id)
        return Response(OrderOutput(order).data)
