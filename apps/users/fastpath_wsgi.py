"""The WSGI entry point's shortcut for the public profile's fast path.

A request the fast path answers from L1 (``apps/users/fastpath.py``) reads no database,
session, file or URLconf, yet Django's handler around it costs about as much as the
answer itself: ``request_started`` and ``request_finished`` (each walks every database
alias, the second every cache too, for connections this request never opened), the
script prefix and URLconf set per request, and the response's close. This entry point
makes the fast path's own test first (``PublicProfileFastPath.claim``) and runs a
claimed request through the handler's *own* middleware chain (``get_response``: the
same metrics, rate-limit checks, request id, access log and fast-path middleware, the
same 4xx logging), and only leaves that per-request bookkeeping out:

- A request the fast path does not claim goes to Django's handler untouched.
- A claimed request that goes on to the view after all (a rate-limit refusal) starts
  the Django request cycle right then, before the view runs (``Claim.on_hand_over``),
  and is finished as Django finishes any (its close sends ``request_finished``).
- One fast answer a second is finished the Django way too, so what the end-of-request
  receivers do with time alone (closing a connection older than ``CONN_MAX_AGE``) still
  happens in a process that serves nothing else.

The middleware in front of the fast path run before anything is known about the
request, so the shortcut is on only when each of them is known not to use a database
connection (``_FRONT_WITHOUT_DATABASE``); with any other there, every request goes to
the handler (and the log says why, once).
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Iterable
from typing import Any

from django.conf import settings
from django.core import signals
from django.core.handlers.wsgi import WSGIHandler, get_script_name
from django.http import HttpRequest, HttpResponse
from django.urls import set_script_prefix

from apps.users.fastpath import CLAIM_ATTRIBUTE, FAST_PATH_MIDDLEWARE, PublicProfileFastPath

logger = logging.getLogger(__name__)
StartResponse = Callable[..., Any]

# Middleware that may sit in front of the fast path: none opens a database connection,
# so a claimed request needs no `request_started` (which checks the connections) to go
# through them.
_FRONT_WITHOUT_DATABASE = frozenset(
    {
        "apps.observability.middleware.MetricsMiddleware",
        "apps.observability.middleware.AccessLogMiddleware",
        "apps.core.middleware.RequestIdMiddleware",
        "apps.ratelimit.middleware.EarlyCheckMiddleware",
    }
)
# How often a fast answer is finished the Django way (see the module's docstring).
DJANGO_FINISH_INTERVAL_SECONDS = 1.0


class PublicProfileFastPathApplication:
    """WSGI application: Django's ``handler``, with claimed profile reads taken short."""

    def __init__(self, handler: WSGIHandler) -> None:
        self.handler = handler
        # Only its claims are used here: the fast-path middleware in the handler's chain
        # answers (its own `PublicProfileFastPath`, built from the same settings).
        self.fast_path = PublicProfileFastPath(handler.get_response)
        self._prefix: str | None = None
        self._decided = False
        self._lock = threading.Lock()
        self._next_django_finish = 0.0

    def __call__(self, environ: dict[str, Any], start_response: StartResponse) -> Iterable[bytes]:
        prefix = self._prefix if self._decided else self._decide()
        # The cheap part of the fast path's test first, on the environ itself.
        if (
            prefix is None
            or environ.get("REQUEST_METHOD") != "GET"
            or not environ.get("PATH_INFO", "").startswith(prefix)
        ):
            return self.handler(environ, start_response)
        # On a copy: building a request rewrites PATH_INFO in the environ it is given,
        # and an unclaimed request goes to the handler with the environ as it came.
        request = self.handler.request_class(dict(environ))
        try:
            claim = self.fast_path.claim(request)
        except Exception:
            # Django's handler goes through the same test again, and turns what fails
            # there into its usual 500 (logged, counted), as without this shortcut.
            claim = None
        if claim is None:
            return self.handler(environ, start_response)
        claim.on_hand_over = self._begin_django_request
        request.__dict__[CLAIM_ATTRIBUTE] = claim
        response = self.handler.get_response(request)
        start_response(
            f"{response.status_code} {response.reason_phrase}",
            [
                *response.items(),
                *(("Set-Cookie", c.output(header="")) for c in response.cookies.values()),
            ],
        )
        if claim.answered and isinstance(response, HttpResponse) and not self._django_finish_due():
            return [response.content]
        # As Django's handler returns it: the server's close() sends `request_finished`.
        response._handler_class = type(self.handler)  # type: ignore[attr-defined]
        return response

    def _begin_django_request(self, request: HttpRequest) -> None:
        """Do what Django's handler does before it builds a request, which was skipped."""
        environ: dict[str, Any] = request.environ  # type: ignore[attr-defined]
        set_script_prefix(get_script_name(environ))
        signals.request_started.send(sender=type(self.handler), environ=environ)

    def _django_finish_due(self) -> bool:
        now = time.monotonic()
        if now < self._next_django_finish:
            return False
        self._next_django_finish = now + DJANGO_FINISH_INTERVAL_SECONDS
        return True

    def _decide(self) -> str | None:
        """Return the path prefix the shortcut looks at, or None when it is off."""
        with self._lock:
            if not self._decided:
                plan = self.fast_path.plan()
                if plan is not None and self._front_uses_no_database():
                    self._prefix = plan.prefix
                self._decided = True
        return self._prefix

    @staticmethod
    def _front_uses_no_database() -> bool:
        middleware = list(settings.MIDDLEWARE)
        unknown = [
            path
            for path in middleware[: middleware.index(FAST_PATH_MIDDLEWARE)]
            if path not in _FRONT_WITHOUT_DATABASE
        ]
        if unknown:
            logger.warning(
                "Public profile WSGI shortcut off: it does not know %s in front of the fast path",
                ", ".join(unknown),
            )
        return not unknown
