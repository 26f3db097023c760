"""Liveness, readiness and metrics endpoints."""

from __future__ import annotations

from collections.abc import Callable
from functools import wraps

from django.http import HttpRequest, HttpResponse, JsonResponse
from django.views.decorators.csrf import csrf_exempt

from apps.core.http.responses import error_response
from apps.observability.exposition import render_metrics
from apps.observability.readiness import readiness_evaluate


def _get_only(view: Callable[[HttpRequest], JsonResponse]) -> Callable[[HttpRequest], JsonResponse]:
    """Answer every method but GET and HEAD with 405 in the JSON error shape.

    CSRF-exempt because nothing here changes state, so a stray POST gets this JSON 405
    rather than Django's HTML CSRF failure page.
    """

    @csrf_exempt
    @wraps(view)
    def wrapper(request: HttpRequest) -> JsonResponse:
        if request.method not in ("GET", "HEAD"):
            response = error_response(405, f'Method "{request.method}" not allowed.')
            response["Allow"] = "GET, HEAD"
            return response
        return view(request)

    return wrapper


@_get_only
def healthz(request: HttpRequest) -> JsonResponse:
    """Answer 200 while the process can serve; touch no dependency."""
    return JsonResponse({"status": "ok"})


STRICT_VALUES = {"": False, "0": False, "false": False, "1": True, "true": True}


@_get_only
def readyz(request: HttpRequest) -> JsonResponse:
    """Answer 503 when the pod cannot serve (the primary database), else 200 with every
    dependency's state and role; ``?strict=1`` answers 503 when any check is not ok."""
    raw = request.GET.get("strict", "")
    if raw.lower() not in STRICT_VALUES:
        return error_response(400, f"strict must be 1 or 0, not {raw!r}.")
    readiness = readiness_evaluate(strict=STRICT_VALUES[raw.lower()])
    return JsonResponse(readiness.body, status=readiness.status_code)


@csrf_exempt
def metrics(request: HttpRequest) -> HttpResponse:
    """Answer with every process's metrics, added up, in Prometheus text format."""
    if request.method not in ("GET", "HEAD"):
        response = error_response(405, f'Method "{request.method}" not allowed.')
        response["Allow"] = "GET, HEAD"
        return response
    body, content_type = render_metrics(request.headers.get("Accept"))
    return HttpResponse(body, content_type=content_type)
