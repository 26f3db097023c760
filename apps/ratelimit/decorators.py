"""Rate limiting for plain Django views."""

from __future__ import annotations

from collections.abc import Callable, Collection
from functools import wraps
from typing import Any, TypeVar

from django.http import HttpRequest, HttpResponseBase

from apps.ratelimit.headers import refused_response
from apps.ratelimit.limiter import Decision, decide_request

View = TypeVar("View", bound=Callable[..., HttpResponseBase])
Refusal = Callable[[HttpRequest, Decision], HttpResponseBase]


def _json_refusal(request: HttpRequest, decision: Decision) -> HttpResponseBase:
    return refused_response(decision)


def ratelimit(
    policy_name: str,
    *,
    methods: Collection[str] | None = None,
    refused: Refusal = _json_refusal,
) -> Callable[[View], View]:
    """Limit a view by the named policy: refused requests get the JSON 429 (or 503).

    ``methods`` limits only requests of those methods (all when None); ``refused``
    renders the refusal instead of the JSON error, e.g. as an HTML page. The RateLimit
    fields and ``Retry-After`` are added by ``RateLimitHeadersMiddleware``.
    """

    def decorator(view: View) -> View:
        @wraps(view)
        def wrapped(request: HttpRequest, *args: Any, **kwargs: Any) -> HttpResponseBase:
            if methods is None or request.method in methods:
                decision = decide_request(policy_name, request)
                if not decision.allowed:
                    return refused(request, decision)
            return view(request, *args, **kwargs)

        return wrapped  # type: ignore[return-value]  # same signature as the view it wraps

    return decorator
