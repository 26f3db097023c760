"""The routing scope of a request, and the read-after token it gives and takes."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from django.conf import settings
from django.db import connections
from django.http import HttpRequest, HttpResponseBase

from apps.core.db.failures import is_connection_failure
from apps.core.db.health import monitor
from apps.core.db.lsn import format_lsn, parse_lsn
from apps.core.db.state import current_state, routing_scope
from apps.core.db.sticking import remember_writes

READ_AFTER_HEADER = "X-Read-After"
READ_AFTER_COOKIE = "hs_read_after"
# The request attribute holding the resolved view, for serving a read again.
REPLICA_VIEW_ATTRIBUTE = "highscale_replica_view"
_SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})


class ReplicaRoutingMiddleware:
    """Scope the request's routing state; hand out and honour the read-after token.

    A request that carries a token (``X-Read-After`` header from API clients, the
    ``hs_read_after`` cookie from browsers) reads from a replica only once that replica
    has replayed past it. A request that writes gets the primary's WAL position back
    in both, so its client's next request sees its own writes; the position is also
    stored under the request's user, if authenticated (``sticking``), for its clients
    that send nothing back.
    """

    def __init__(self, get_response: Callable[[HttpRequest], HttpResponseBase]) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponseBase:
        # META, not request.headers: the headers mapping is built from all of META.
        header = parse_lsn(request.META.get("HTTP_X_READ_AFTER"))
        cookie = parse_lsn(request.COOKIES.get(READ_AFTER_COOKIE))
        given = max((t for t in (header, cookie) if t is not None), default=None)
        with routing_scope(read_after=given) as state:
            response = self.get_response(request)
            token = remember_writes(state)
        if token is not None and token != given:
            value = format_lsn(token)
            response[READ_AFTER_HEADER] = value
            response.set_cookie(
                READ_AFTER_COOKIE,
                value,
                max_age=settings.DATABASE_READ_AFTER_COOKIE_SECONDS,
                httponly=True,
                samesite="Lax",
                secure=request.is_secure(),
            )
        return response

    def process_view(
        self,
        request: HttpRequest,
        view_func: Callable[..., HttpResponseBase],
        view_args: tuple[Any, ...],
        view_kwargs: dict[str, Any],
    ) -> None:
        # Kept so that a read which failed on a replica can be served again.
        setattr(request, REPLICA_VIEW_ATTRIBUTE, (view_func, view_args, view_kwargs))

    def process_exception(
        self, request: HttpRequest, exception: Exception
    ) -> HttpResponseBase | None:
        """Serve a safe request again from the primary when its replica failed under it."""
        if not replica_failed_under(request, exception):
            return None
        state = current_state()
        alias = state.replica if state is not None else None
        if state is None or alias is None:
            return None
        monitor.mark_down(alias, f"{type(exception).__name__} during a request")
        connections[alias].close_if_unusable_or_obsolete()
        state.replica = None
        state.pinned_primary = True
        view_func, view_args, view_kwargs = getattr(request, REPLICA_VIEW_ATTRIBUTE)
        response: HttpResponseBase = view_func(request, *view_args, **view_kwargs)
        return response


def replica_failed_under(request: HttpRequest, exception: BaseException) -> bool:
    """Return whether ``exception`` is the request's replica failing under a safe read,
    which ``ReplicaRoutingMiddleware`` serves again from the primary (so the API's
    exception handler lets it through instead of answering it)."""
    state = current_state()
    alias = state.replica if state else None
    return (
        state is not None
        and alias is not None
        and not state.wrote
        and request.method in _SAFE_METHODS
        and is_connection_failure(exception)
        and connections[alias].errors_occurred
    )
