"""Rate-limit middleware: checks sent as a request arrives, and the RateLimit fields."""

from __future__ import annotations

from collections.abc import Callable

from django.http import HttpRequest, HttpResponseBase

from apps.ratelimit.headers import apply_headers
from apps.ratelimit.limiter import (
    REQUEST_ATTRIBUTE,
    Decision,
    finish_early_checks,
    start_early_checks,
)
from apps.ratelimit.routes import policies_for_path

GetResponse = Callable[[HttpRequest], HttpResponseBase]


class EarlyCheckMiddleware:
    """Send the rate-limit checks of the request's view before the rest of the stack runs.

    A check is one Redis round trip, and a view would otherwise wait for it idle: sent
    here, near the front, Redis decides while the other middleware, URL resolution and
    the view's own setup run, and the view's check (throttle, decorator, the profile's
    fast path) takes the answer that is by then waiting on the socket. Only requests
    without credentials are checked early (their key is the client address, known now);
    others are checked when the view asks, as without this middleware.

    Such a request counts once it reaches a limited view, even if the view then refuses
    it before asking (e.g. 401 for an anonymous client): its decision is read here
    afterwards and reported in the RateLimit fields like any other.
    """

    def __init__(self, get_response: GetResponse) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponseBase:
        policies = policies_for_path(getattr(request, "urlconf", None), request.path_info)
        if not policies or not start_early_checks(request, policies):
            return self.get_response(request)
        try:
            response = self.get_response(request)
        finally:
            # Every answer sent for is read, whatever happened: the connection stays in step.
            left = finish_early_checks(request)
        if left:
            apply_headers(response, request.__dict__[REQUEST_ATTRIBUTE])
        return response


class RateLimitHeadersMiddleware:
    """Turn the decisions recorded during the request into response header fields.

    Throttles and the decorator record a decision on the request; whatever answers
    (the view, a 429, an error handler), the client sees the limit state.
    """

    def __init__(self, get_response: GetResponse) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponseBase:
        response = self.get_response(request)
        decisions: list[Decision] = getattr(request, REQUEST_ATTRIBUTE, [])
        if decisions:
            apply_headers(response, decisions)
        return response
