from django.urls import path

from apps.orders import apis

urlpatterns = [
    path("products", apis.ProductListApi.as_view(), name="products-list"),
    path("products/<int:product_id>", apis.ProductDetailApi.as_view(), name="products-detail"),
    path("orders", apis.OrdersApi.as_view(), name="orders"),
    path("orders/<int:order_id>", apis.OrderDetailApi.as_view(), name="orders-detail"),
]
