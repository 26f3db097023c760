"""Top-level routes: the versioned API, its schema and docs, admin, health and metrics."""

from django.contrib import admin
from django.urls import include, path, re_path
from drf_spectacular.views import SpectacularAPIView

from apps.core.http import views as core_views
from apps.observability import views as observability_views
from apps.ratelimit.admin_login import admin_login

api_v1 = [
    path("", include("apps.users.urls")),
    path("", include("apps.orders.urls")),
]

urlpatterns = [
    path("api/v1/", include(api_v1)),
    path("api/schema/", SpectacularAPIView.as_view(), name="schema"),
    path("api/docs/", core_views.ApiDocsView.as_view(url_name="schema"), name="docs"),
    # Before the admin's own routes: its login path, under the login rate limit.
    path("admin/login/", admin_login, name="admin-login"),
    path("admin/", admin.site.urls),
    path("healthz", observability_views.healthz, name="healthz"),
    path("readyz", observability_views.readyz, name="readyz"),
    path("metrics", observability_views.metrics, name="metrics"),
    # Every other path answers 404 in the JSON error shape, in DEBUG too. Admin and
    # static paths are left to Django so that its trailing-slash redirect still works.
    re_path(r"^(?!admin|static).*$", core_views.not_found),
]

handler400 = "apps.core.http.views.bad_request"
handler403 = "apps.core.http.views.permission_denied"
handler404 = "apps.core.http.views.not_found"
handler500 = "apps.core.http.views.server_error"
