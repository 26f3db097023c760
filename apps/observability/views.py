"""Liveness and readiness endpoints."""

from __future__ import annotations

from django.http import HttpRequest, JsonResponse
from django.views.decorators.http import require_GET

from apps.observability.checks import run_readiness_checks


@require_GET
def healthz(request: HttpRequest) -> JsonResponse:
    """Answer 200 while the process can serve; touch no dependency."""
    return JsonResponse({"status": "ok"})


@require_GET
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
