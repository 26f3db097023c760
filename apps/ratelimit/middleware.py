"""The middleware that reports a request's rate-limit decisions in its response."""

from __future__ import annotations

from collections.abc import Callable

from django.http import HttpRequest, HttpResponseBase

from apps.ratelimit.headers import apply_headers
from apps.ratelimit.limiter import REQUEST_ATTRIBUTE, Decision

GetResponse = Callable[[HttpRequest], HttpResponseBase]


class RateLimitHeadersMiddleware:
    """Turn the decisions recorded during the request into response header fields.

    Throttles and the decorator record a decision on the request; whatever answers
    (the view, a 429, an error handler), the client sees the limit state.
    """

    def __init__(self, get_response: GetResponse) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponseBase:
        decisions: list[Decision] = []
        # Set before the view runs, so that a DRF request, which reads attributes
        # through to this one, records into the same list.
        setattr(request, REQUEST_ATTRIBUTE, decisions)
        response = self.get_response(request)
        if decisions:
            apply_headers(response, decisions)
        return response
