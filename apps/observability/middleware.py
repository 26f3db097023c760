"""Middleware that counts, times and logs every request by its route template."""

from __future__ import annotations

import logging
import re
import time
from collections.abc import Callable
from functools import lru_cache

from django.http import HttpRequest, HttpResponseBase
from django.urls import Resolver404, resolve

from apps.core import views as core_views
from apps.observability.logging import current_request
from apps.observability.metrics import http_request_duration_seconds, http_requests_total

GetResponse = Callable[[HttpRequest], HttpResponseBase]

# The one label value every path that matches no real route shares, so that a scanner
# walking random paths adds one series, not one per path.
UNMATCHED = "<unmatched>"
_CONVERTER_RE = re.compile(r"<(?:(?P<converter>[^>:]+):)?(?P<name>[^>]+)>")

access_logger = logging.getLogger("highscale.access")


def _placeholder(match: re.Match[str]) -> str:
    name = match["name"]
    # The contract writes ids as `{id}` (`/api/v1/users/{id}`), whatever the kwarg is called.
    if name == "pk" or name == "id" or name.endswith("_id"):
        return "{id}"
    return "{" + name + "}"


@lru_cache(maxsize=512)
def route_template(route: str) -> str:
    """Turn a Django route (``api/v1/users/<int:user_id>``) into ``/api/v1/users/{id}``."""
    return "/" + _CONVERTER_RE.sub(_placeholder, route)


def endpoint_label(request: HttpRequest) -> str:
    """Return the route template that served ``request``, or ``<unmatched>``."""
    match = getattr(request, "resolver_match", None)
    if match is None:
        # A middleware answered before URL resolution (413, 429): resolve it here.
        try:
            match = resolve(request.path_info)
        except Resolver404:
            return UNMATCHED
    # The catch-all JSON 404 route is not an endpoint.
    if match.route is None or match.func is core_views.not_found:
        return UNMATCHED
    # Regex routes (admin's) carry anchors and groups; they are few and fixed.
    return route_template(match.route)


class MetricsMiddleware:
    """Record ``http_requests_total`` and ``http_request_duration_seconds`` per request.

    Placed first, so the time covers every other middleware, and an exception raised
    below still counts, as the 500 Django turns it into.
    """

    def __init__(self, get_response: GetResponse) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponseBase:
        started = time.perf_counter()
        response = self.get_response(request)
        elapsed = time.perf_counter() - started
        method = request.method if request.method in _KNOWN_METHODS else "other"
        endpoint = endpoint_label(request)
        http_requests_total.labels(method, endpoint, str(response.status_code)).inc()
        http_request_duration_seconds.labels(method, endpoint).observe(elapsed)
        return response


# A client may send any method name; each unknown one must not become a series.
_KNOWN_METHODS = frozenset({"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"})


class AccessLogMiddleware:
    """Write one structured ``highscale.access`` line per request.

    Sits inside the request-id middleware, so the line carries the request's id, and
    keeps the request at hand for the log filter, so every line names its user.
    """

    def __init__(self, get_response: GetResponse) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponseBase:
        started = time.perf_counter()
        token = current_request.set(request)
        try:
            response = self.get_response(request)
            self._log(request, response, started)
        finally:
            current_request.reset(token)
        return response

    @staticmethod
    def _log(request: HttpRequest, response: HttpResponseBase, started: float) -> None:
        if access_logger.isEnabledFor(logging.INFO):
            access_logger.info(
                "%s %s %s",
                request.method,
                request.path,
                response.status_code,
                extra={
                    "method": request.method,
                    "endpoint": endpoint_label(request),
                    "status": response.status_code,
                    "duration_ms": round((time.perf_counter() - started) * 1000, 3),
                },
            )
