"""The public profile's fast path: anonymous reads answered from L1 before the rest of the stack.

``GET /api/v1/users/{id}`` is the hottest read of the API, and when this process's L1
holds the profile the answer needs no database, no session, no user and no DRF view:
only the rate-limit check, the stored document and its ETag. Everything in the stack
behind this middleware would do nothing for such a request but cost more than the
answer (the whole Django + DRF path is several times the L1 lookup), so this
middleware answers it itself, exactly as that stack would:

- same status, body and header fields as ``PublicProfileApi`` (ETag and 304 on
  ``If-None-Match``, ``Cache-Control``, ``Allow``, the RateLimit fields), plus what the
  middleware it skips adds (``SecurityMiddleware``, ``XFrameOptionsMiddleware``: run
  here on the response; ``Content-Length``);
- the request is counted once by each of the view's rate-limit policies; a refused
  request, an L1 miss or an unknown id goes on to the view *with the decisions
  already made* (``PREDECIDED_ATTRIBUTE``), which answers 429, reads Redis or the
  database, or answers 404 without counting the request again;
- metrics, the request id and the access log sit in front of this middleware, so they
  see fast answers like any other (the endpoint label is set here, no URL resolution).

Anything else goes the usual way untouched: another method or path, an
``Authorization`` header or a session cookie (the user may be someone), an ``Accept``
other than none, ``*/*`` or JSON, a query string, a body, a host ``ALLOWED_HOSTS``
refuses, an HTTPS redirect due, tracing on (the view names its span), or a middleware
behind this one that the fast path does not know to be without effect here (then the
fast path is off for the process, and says so once in the log).
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from django.conf import settings
from django.core.exceptions import DisallowedHost
from django.http import HttpRequest, HttpResponse, HttpResponseBase
from django.middleware.clickjacking import XFrameOptionsMiddleware
from django.middleware.security import SecurityMiddleware
from django.urls import NoReverseMatch, Resolver404, get_script_prefix, resolve, reverse

from apps.core.cache import tiered_cache
from apps.observability.middleware import route_template, set_endpoint_label
from apps.ratelimit.headers import apply_headers
from apps.ratelimit.limiter import PREDECIDED_ATTRIBUTE, Decision, start_decision
from apps.ratelimit.throttles import PolicyThrottle
from apps.users import apis
from apps.users.cache import user_cache_key

logger = logging.getLogger(__name__)
GetResponse = Callable[[HttpRequest], HttpResponseBase]

FAST_PATH_MIDDLEWARE = "apps.users.fastpath.PublicProfileFastPathMiddleware"
# Middleware that does nothing for a request the fast path answers: an anonymous GET
# without cookie, body or query, served from memory (no session, user, CSRF token,
# message, database read or write, static file).
_WITHOUT_EFFECT = frozenset(
    {
        "apps.core.replica_middleware.ReplicaRoutingMiddleware",
        "apps.core.middleware.BodySizeLimitMiddleware",
        "django.contrib.sessions.middleware.SessionMiddleware",
        "django.middleware.common.CommonMiddleware",
        "django.middleware.csrf.CsrfViewMiddleware",
        "django.contrib.auth.middleware.AuthenticationMiddleware",
        "apps.core.middleware.LazyMessageMiddleware",
        "apps.users.middleware.LastActiveMiddleware",
        # The fast path adds the RateLimit fields itself.
        "apps.ratelimit.middleware.RateLimitHeadersMiddleware",
        # Serves STATIC_URL only (and WHITENOISE_ROOT, checked below).
        "whitenoise.middleware.WhiteNoiseMiddleware",
    }
)
# Middleware whose only effect here is on the response's header fields: run on it.
_RESPONSE_ONLY = {
    "django.middleware.security.SecurityMiddleware": SecurityMiddleware,
    "django.middleware.clickjacking.XFrameOptionsMiddleware": XFrameOptionsMiddleware,
}
_JSON = "application/json"


@dataclass(frozen=True)
class _Plan:
    """What the fast path needs, worked out once per middleware instance."""

    prefix: str
    endpoint: str
    policies: tuple[str, ...]
    view_headers: tuple[tuple[str, str], ...]
    # Header-only middleware behind this one, innermost first (the order they run in).
    response_middleware: tuple[SecurityMiddleware | XFrameOptionsMiddleware, ...]
    security: SecurityMiddleware | None


class PublicProfileFastPathMiddleware:
    """Answer anonymous ``GET /api/v1/users/{id}`` from L1; hand anything else on."""

    def __init__(self, get_response: GetResponse) -> None:
        self.get_response = get_response
        self._plan: _Plan | None = None
        self._planned = False
        self._lock = threading.Lock()
        # Raw Host values already checked against ALLOWED_HOSTS (for that list object).
        self._hosts: dict[str, bool] = {}
        self._hosts_for: object = None

    def __call__(self, request: HttpRequest) -> HttpResponseBase:
        plan = self._plan if self._planned else self._make_plan()
        if plan is None or request.method != "GET":
            return self.get_response(request)
        path = request.path_info
        if not path.startswith(plan.prefix):
            return self.get_response(request)
        digits = path[len(plan.prefix) :]
        if not (digits.isascii() and digits.isdigit()) or not self._eligible(request, plan):
            return self.get_response(request)
        return self._answer(request, plan, int(digits))

    # --- the answer ----------------------------------------------------------------------

    def _answer(self, request: HttpRequest, plan: _Plan, user_id: int) -> HttpResponseBase:
        set_endpoint_label(request, plan.endpoint)
        # The checks go out first; the answer is prepared while Redis decides, and is
        # sent only if every policy lets the request pass.
        pending: list[Callable[[], Decision]] = []
        response: HttpResponse | None = None
        try:
            # Every check sent is read back, even if a later step raises: an unread
            # answer would be taken for the next check's on this connection.
            for name in plan.policies:
                pending.append(start_decision(name, request))
            profile = tiered_cache().peek(user_cache_key(user_id))
            if profile is not None:
                response = _profile_response(request, plan, profile.etag, profile.data)
        finally:
            decisions = [finish() for finish in pending]
        if response is None or not all(decision.allowed for decision in decisions):
            # Not in L1, or refused: the view answers, with the decisions made here.
            self._predecide(request, plan, decisions)
            return self.get_response(request)
        if decisions:
            apply_headers(response, decisions)
        return response

    @staticmethod
    def _predecide(request: HttpRequest, plan: _Plan, decisions: list[Decision]) -> None:
        setattr(request, PREDECIDED_ATTRIBUTE, dict(zip(plan.policies, decisions, strict=True)))

    # --- which requests ------------------------------------------------------------------

    def _eligible(self, request: HttpRequest, plan: _Plan) -> bool:
        meta = request.META
        if (
            "HTTP_AUTHORIZATION" in meta
            or meta.get("QUERY_STRING")
            or meta.get("CONTENT_LENGTH", "0") not in ("", "0")
            or "HTTP_TRANSFER_ENCODING" in meta
        ):
            return False
        accept = meta.get("HTTP_ACCEPT")
        if accept is not None and accept.strip() not in ("*/*", _JSON):
            return False
        if "HTTP_COOKIE" in meta and settings.SESSION_COOKIE_NAME in request.COOKIES:
            return False
        if not self._host_allowed(request):
            return False
        # An HTTPS redirect is the view's stack's to send.
        return plan.security is None or plan.security.process_request(request) is None

    def _host_allowed(self, request: HttpRequest) -> bool:
        allowed_hosts = settings.ALLOWED_HOSTS
        if self._hosts_for is not allowed_hosts or len(self._hosts) > 256:
            self._hosts, self._hosts_for = {}, allowed_hosts
        # Django's own first step of `get_host()`: the value the check is about.
        raw: str = request._get_raw_host()  # type: ignore[attr-defined]
        known = self._hosts.get(raw)
        if known is None:
            try:
                request.get_host()
                known = True
            except DisallowedHost:
                known = False
            self._hosts[raw] = known
        return known

    # --- the plan ------------------------------------------------------------------------

    def _make_plan(self) -> _Plan | None:
        with self._lock:
            if not self._planned:
                self._plan = _plan_for(self.get_response)
                self._planned = True
        return self._plan


def _profile_response(request: HttpRequest, plan: _Plan, etag: str, data: Any) -> HttpResponse:
    """Return the stack's 200 (or 304 for a matching ``If-None-Match``) for the profile,
    all but its RateLimit fields.
    """
    headers = {"ETag": etag, "Cache-Control": apis.shared_cache_control()}
    if etag in apis.if_none_match(request):
        response = HttpResponse(status=304, headers=headers)
        # DRF drops the type of an empty body.
        del response["Content-Type"]
    else:
        body = apis.rendered_profiles.body(etag, data)
        response = HttpResponse(body, content_type=_JSON, headers=headers)
    for name, value in plan.view_headers:
        response[name] = value
    response["Content-Length"] = str(len(response.content))
    for middleware in plan.response_middleware:
        # Both return the response they were given, with fields added.
        response = middleware.process_response(request, response)
    return response


def _plan_for(get_response: GetResponse) -> _Plan | None:
    """Return the fast path's plan for the configured stack, or None when it must be off."""
    reason = _unsupported_reason()
    if reason is not None:
        logger.warning("Public profile fast path off: %s", reason)
        return None
    middleware = list(settings.MIDDLEWARE)
    behind = middleware[middleware.index(FAST_PATH_MIDDLEWARE) + 1 :]
    response_middleware: list[Any] = []
    security: SecurityMiddleware | None = None
    for path in behind:
        if path in _RESPONSE_ONLY:
            instance = _RESPONSE_ONLY[path](get_response)
            response_middleware.insert(0, instance)
            if isinstance(instance, SecurityMiddleware):
                security = instance
        elif path not in _WITHOUT_EFFECT:
            logger.warning("Public profile fast path off: it does not know %s behind it", path)
            return None
    view = apis.PublicProfileApi()
    # As `as_view()` does per request: HEAD is served by GET (and listed in `Allow`).
    view.setup(HttpRequest())
    throttles = view.get_throttles()
    if not all(isinstance(throttle, PolicyThrottle) for throttle in throttles):
        logger.warning("Public profile fast path off: the view has a throttle of another kind")
        return None
    # As `request.path_info` spells it: without the script prefix of a sub-path mount.
    try:
        url = "/" + reverse("users-public", kwargs={"user_id": 1})[len(get_script_prefix()) :]
        match = resolve(url)
    except (NoReverseMatch, Resolver404):
        # A URLconf without the public profile (a test's, a trimmed deployment's).
        logger.info("Public profile fast path off: the URLconf has no public profile route")
        return None
    view_class = getattr(match.func, "view_class", None)
    if not url.endswith("/1") or view_class is not apis.PublicProfileApi:
        logger.warning("Public profile fast path off: its route is not `<prefix>/<id>`")
        return None
    return _Plan(
        prefix=url[:-1],
        endpoint=route_template(str(match.route)),
        policies=tuple(throttle.policy_name for throttle in throttles),  # type: ignore[attr-defined]
        view_headers=tuple(view.default_response_headers.items()),
        response_middleware=tuple(response_middleware),
        security=security,
    )


def _unsupported_reason() -> str | None:
    if FAST_PATH_MIDDLEWARE not in settings.MIDDLEWARE:
        return "not in MIDDLEWARE"
    if any("opentelemetry" in path for path in settings.MIDDLEWARE):
        return "tracing is on (the view names the request's span)"
    if getattr(settings, "WHITENOISE_ROOT", None):
        return "WhiteNoise serves files at any path (WHITENOISE_ROOT)"
    if settings.DISALLOWED_USER_AGENTS or settings.PREPEND_WWW:
        return "CommonMiddleware has work to do on every request"
    return None
