"""Liveness, readiness and metrics endpoints."""

from __future__ import annotations

from collections.abc import Callable
from functools import wraps

from django.http import HttpRequest, HttpResponse, JsonResponse
from django.views.decorators.csrf import csrf_exempt

from apps.core.http.responses import error_response
from apps.observability.checks import run_readiness_checks
from apps.observability.exposition import render_metrics


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


@_get_only
def readyz(request: HttpRequest) -> JsonResponse:
    """Answer 200 when every dependency is usable, else 503 naming the failing checks."""
    results = run_readiness_checks()
    failing = [r.name for r in results if not r.ok]
    body = {
        "status": "ok" if not failing else "unavailable",
        "checks": {r.name: {"ok": r.ok, "detail": r.detail} for r in results},
    }
    if failing:
        body["detail"] = "Not ready: " + ", ".join(failing) + "."
    return JsonResponse(body, status=503 if failing else 200)


@csrf_exempt
def metrics(request: HttpRequest) -> HttpResponse:
    """Answer with every process's metrics, added up, in Prometheus text format."""
    if request.method not in ("GET", "HEAD"):
        response = error_response(405, f'Method "{request.method}" not allowed.')
        response["Allow"] = "GET, HEAD"
        return response
    body, content_type = render_metrics(request.headers.get("Accept"))
    return HttpResponse(body, content_type=content_type)
