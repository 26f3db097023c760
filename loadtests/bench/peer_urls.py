"""Bench-only routes: the project's, plus one trivial view limited in each way compared.

Every view answers the same small JSON body; only the limiter in front differs, so the
difference between two of them is the limiter's cost. Mounted only by
``loadtests.bench.peer_settings``.
"""

from __future__ import annotations

from django.http import HttpRequest, JsonResponse
from django.urls import include, path
from django_ratelimit.decorators import (  # type: ignore[import-untyped]  # ships no types
    ratelimit as peer_ratelimit,
)
from rest_framework.authentication import BaseAuthentication
from rest_framework.permissions import BasePermission
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.throttling import AnonRateThrottle, BaseThrottle
from rest_framework.views import APIView

from apps.ratelimit.decorators import ratelimit
from apps.ratelimit.throttles import PolicyThrottle
from loadtests.bench.peer_settings import BENCH_RATELIMIT_LIMIT

BODY = {"status": "ok"}
PREFIX = "bench/ratelimit/"


def plain(request: HttpRequest) -> JsonResponse:
    """Answer the constant body, unlimited."""
    return JsonResponse(BODY)


@ratelimit("bench_sliding")
def ours_sliding(request: HttpRequest) -> JsonResponse:
    """Answer the constant body behind our decorator, sliding-window log."""
    return JsonResponse(BODY)


@ratelimit("bench_gcra")
def ours_gcra(request: HttpRequest) -> JsonResponse:
    """Answer the constant body behind our decorator, GCRA."""
    return JsonResponse(BODY)


@peer_ratelimit(key="ip", rate=f"{BENCH_RATELIMIT_LIMIT}/m", block=True)  # type: ignore[untyped-decorator]  # ships no types
def peer_django_ratelimit(request: HttpRequest) -> JsonResponse:
    """Answer the constant body behind django-ratelimit (403 when refused)."""
    return JsonResponse(BODY)


class BenchPolicyThrottle(PolicyThrottle):
    """Our DRF throttle on the bench's sliding-window policy."""

    policy_name = "bench_sliding"


class BenchAnonRateThrottle(AnonRateThrottle):
    """DRF's own throttle, counting in the django-redis cache."""

    scope = "bench"


class PlainApiView(APIView):
    """A DRF view with no authentication, permission or throttle: the DRF baseline."""

    authentication_classes: list[type[BaseAuthentication]] = []
    permission_classes: list[type[BasePermission]] = []
    throttle_classes: list[type[BaseThrottle]] = []

    def get(self, request: Request) -> Response:
        """Answer the constant body."""
        return Response(BODY)


class OursApiView(PlainApiView):
    throttle_classes = [BenchPolicyThrottle]


class DrfThrottledApiView(PlainApiView):
    throttle_classes = [BenchAnonRateThrottle]


urlpatterns = [
    path(f"{PREFIX}plain", plain),
    path(f"{PREFIX}ours", ours_sliding),
    path(f"{PREFIX}ours-gcra", ours_gcra),
    path(f"{PREFIX}django-ratelimit", peer_django_ratelimit),
    path(f"{PREFIX}drf-plain", PlainApiView.as_view()),
    path(f"{PREFIX}drf-ours", OursApiView.as_view()),
    path(f"{PREFIX}drf-throttle", DrfThrottledApiView.as_view()),
    path("", include("config.urls")),
]
