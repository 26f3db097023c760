"""Errors of rate limiting, rendered in the API's one error shape."""

from __future__ import annotations

from apps.core.http.errors import ApplicationError


class RateLimiterUnavailable(ApplicationError):
    """A fail-closed policy could not be checked because its store is unreachable."""

    status_code = 503
    default_detail = "Rate limiting is temporarily unavailable; retry in a moment."
