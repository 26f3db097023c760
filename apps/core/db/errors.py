"""Errors of the replica routing layer, rendered by the one API error handler."""

from __future__ import annotations

from apps.core.http.errors import ApplicationError


class ReadCapacityExhausted(ApplicationError):
    """No replica can serve reads and the primary's fallback budget is spent."""

    status_code = 503
    default_detail = "The service is temporarily overloaded; retry shortly."
