"""Add the RateLimit fields to every response a policy decided."""

from __future__ import annotations

from collections.abc import Callable

from django.http import HttpRequest, HttpResponseBase

from apps.ratelimit.headers import apply_headers
from apps.ratelimit.limiter import REQUEST_ATTRIBUTE, Decision


class RateLimitHeadersMiddleware:
    """Turn the decisions recorded during the request into response header fields.

    Throttles and the decorator record a decision on the request; whatever answers
    (the view, a 429, an error handler), the client sees the limit state.
    """

    def __init__(self, get_response: Callable[[HttpRequest], HttpResponseBase]) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponseBase:
        response = self.get_response(request)
        decisions: list[Decision] = getattr(request, REQUEST_ATTRIBUTE, [])
        if decisions:
            apply_headers(response, decisions)
        return response
