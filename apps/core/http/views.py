"""Views outside the API: JSON answers to errors (unknown routes, crashes), the docs page."""

from __future__ import annotations

from typing import Any

from django.http import HttpRequest, HttpResponseBase, JsonResponse
from django.views.decorators.csrf import csrf_exempt
from drf_spectacular.views import SpectacularSwaggerView

from apps.core.http.responses import error_response


# Exempt so that a POST to an unknown route answers this JSON 404, not the CSRF HTML page.
@csrf_exempt
def not_found(request: HttpRequest, exception: Exception | None = None) -> JsonResponse:
    """Answer an unknown route with 404 in the error shape."""
    return error_response(404, "Not found.")


def bad_request(request: HttpRequest, exception: Exception | None = None) -> JsonResponse:
    """Answer a request Django refused as malformed with 400 in the error shape."""
    return error_response(400, "Bad request.")


def permission_denied(request: HttpRequest, exception: Exception | None = None) -> JsonResponse:
    """Answer a refused request with 403 in the error shape."""
    return error_response(403, "You do not have permission to perform this action.")


def server_error(request: HttpRequest) -> JsonResponse:
    """Answer an unexpected failure with 500 in the error shape, never a traceback."""
    return error_response(500, "Internal server error.")


class ApiDocsView(SpectacularSwaggerView):
    """drf-spectacular's Swagger UI page (assets from the installed package), GET and HEAD only.

    The page has an HTML renderer alone, so DRF's answer to other methods went through
    it: OPTIONS (metadata, with no template to render it) failed as a 500, and a 405
    came as a line of HTML. Those methods get the JSON 405 of the API instead.
    """

    def dispatch(self, request: HttpRequest, *args: Any, **kwargs: Any) -> HttpResponseBase:
        if request.method not in ("GET", "HEAD"):
            response = error_response(405, f'Method "{request.method}" not allowed.')
            response["Allow"] = "GET, HEAD"
            return response
        return super().dispatch(request, *args, **kwargs)
