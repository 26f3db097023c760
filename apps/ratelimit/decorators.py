"""Rate limiting for plain Django views."""

from __future__ import annotations

from collections.abc import Callable
from functools import wraps
from typing import Any, TypeVar

from django.http import HttpRequest, HttpResponseBase

from apps.ratelimit.headers import refused_response
from apps.ratelimit.limiter import decide_request

View = TypeVar("View", bound=Callable[..., HttpResponseBase])


def ratelimit(policy_name: str) -> Callable[[View], View]:
    """Limit a view by the named policy: refused requests get the JSON 429 (or 503).

    The RateLimit fields are added by ``RateLimitHeadersMiddleware``.
    """

    def decorator(view: View) -> View:
        @wraps(view)
        def wrapped(request: HttpRequest, *args: Any, **kwargs: Any) -> HttpResponseBase:
            decision = decide_request(policy_name, request)
            if not decision.allowed:
                return refused_response(decision)
            return view(request, *args, **kwargs)

        return wrapped  # type: ignore[return-value]  # same signature as the view it wraps

    return decorator
