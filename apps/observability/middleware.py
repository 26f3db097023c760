"""Middleware that counts, times and logs every request by its route template."""

from __future__ import annotations

import logging
import re
import time
from collections.abc import Callable
from functools import lru_cache

from django.http import HttpRequest, HttpResponseBase
from django.urls import Resolver404, resolve
from prometheus_client import Counter, Histogram

from apps.core.http import views as core_views
from apps.observability.logging import AccessRecord, current_request
from apps.observability.metrics import http_request_duration_seconds, http_requests_total

GetResponse = Callable[[HttpRequest], HttpResponseBase]

# The one label value every path that matches no real route shares, so that a scanner
# walking random paths adds one series, not one per path.
UNMATCHED = "<unmatched>"
_CONVERTER_RE = re.compile(r"<(?:(?P<converter>[^>:]+):)?(?P<name>[^>]+)>")

access_logger = logging.getLogger("highscale.access")
_ENDPOINT_ATTRIBUTE = "_observability_endpoint"


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
    """Return the route template that served ``request``, or ``<unmatched>``.

    Call it once the response is built: the answer is kept on the request, because the
    metrics and the access log both need it and resolving a path again costs more.
    """
    known: str | None = request.__dict__.get(_ENDPOINT_ATTRIBUTE)
    if known is None:
        known = request.__dict__[_ENDPOINT_ATTRIBUTE] = _endpoint_label(request)
    return known


def set_endpoint_label(request: HttpRequest, label: str) -> None:
    """Record the route template of a request answered without URL resolution."""
    request.__dict__[_ENDPOINT_ATTRIBUTE] = label


def _endpoint_label(request: HttpRequest) -> str:
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
        key = (method, endpoint_label(request), response.status_code)
        children = _children.get(key)
        if children is None:
            children = _children[key] = (
                http_requests_total.labels(key[0], key[1], str(key[2])),
                http_request_duration_seconds.labels(key[0], key[1]),
            )
        children[0].inc()
        children[1].observe(elapsed)
        return response


# The labelled series per (method, endpoint, status): `labels()` validates and locks on
# every call, a dict lookup does not. Bounded like the label values themselves.
_children: dict[tuple[str, str, int], tuple[Counter, Histogram]] = {}


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
            # Built directly rather than through `info()`, which walks the stack for the
            # caller's file and line on every request (this line never shows them), and
            # as a lean record (see AccessRecord).
            status = response.status_code
            record = AccessRecord(
                access_logger.name,
                "%s %s %s",
                (request.method, request.path, status),
                {
                    "method": request.method,
                    "endpoint": endpoint_label(request),
                    "status": status,
                    "duration_ms": round((time.perf_counter() - started) * 1000, 3),
                },
            )
            access_logger.handle(record)
