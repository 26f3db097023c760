"""JSON answers for errors raised outside the API views (unknown routes, crashes)."""

from __future__ import annotations

from django.http import HttpRequest, JsonResponse
from django.views.decorators.csrf import csrf_exempt

from apps.core.responses import error_response


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
