"""The one JSON error shape, for code paths outside DRF."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from django.http import JsonResponse


def error_body(detail: str, errors: Mapping[str, Any] | None = None) -> dict[str, Any]:
    """Return the error body: ``{"detail": ...}`` plus field errors when there are any."""
    body: dict[str, Any] = {"detail": detail}
    if errors:
        body["errors"] = dict(errors)
    return body


def error_response(
    status: int, detail: str, errors: Mapping[str, Any] | None = None
) -> JsonResponse:
    """Return a JSON error response with the project's error shape."""
    return JsonResponse(error_body(detail, errors), status=status)
