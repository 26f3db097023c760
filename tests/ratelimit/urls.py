"""The project's routes plus one plain Django view limited by the decorator."""

from django.http import HttpRequest, JsonResponse
from django.urls import include, path

from apps.ratelimit.decorators import ratelimit


@ratelimit("plain")
def limited_view(request: HttpRequest) -> JsonResponse:
    return JsonResponse({"ok": True})


urlpatterns = [
    path("plain/", limited_view),
    path("", include("config.urls")),
]
