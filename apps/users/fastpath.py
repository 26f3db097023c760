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
  request goes on to the view *with the decisions already made*
  (``PREDECIDED_ATTRIBUTE``), which answers 429 without counting it again; an L1 miss
  or an unknown id goes on to the view untouched (its own check counts it);
- metrics, the request id and the access log sit in front of this middleware, so they
  see fast answers like any other (the endpoint label is set here, no URL resolution).

The WSGI entry point (``apps/users/fastpath_wsgi.py``) makes the same test first
(``PublicProfileFastPath.claim``) and runs a claimed request through the same
middleware chain without Django's per-request handler work; the claim it leaves on the
request (``CLAIM_ATTRIBUTE``) is taken here instead of testing and reading L1 again.

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
from dataclasses import dataclass, field
from typing import Any

from django.conf import settings
from django.core.exceptions import DisallowedHost
from django.http import HttpRequest, HttpResponse, HttpResponseBase
from django.middleware.clickjacking import XFrameOptionsMiddleware
from django.middleware.security import SecurityMiddleware
from django.urls import NoReverseMatch, Resolver404, get_script_prefix, resolve, reverse

from apps.core.cache import CachedValue, tiered_cache
from apps.observability.middleware import route_template, set_endpoint_label
from apps.ratelimit.headers import apply_headers
from apps.ratelimit.limiter import PREDECIDED_ATTRIBUTE, Decision, start_decision
from apps.ratelimit.throttles import PolicyThrottle
from apps.users import apis
from apps.users.cache import user_cache_key

logger = logging.getLogger(__name__)
GetResponse = Callable[[HttpRequest], HttpResponseBase]

FAST_PATH_MIDDLEWARE = "apps.users.fastpath.PublicProfileFastPathMiddleware"
# Where the WSGI entry point leaves its claim on a request (see `Claim`).
CLAIM_ATTRIBUTE = "_profile_fast_path_claim"
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
    """What the fast path needs, worked out once per stack."""

    prefix: str
    endpoint: str
    policies: tuple[str, ...]
    view_headers: tuple[tuple[str, str], ...]
    # Header-only middleware behind this one, innermost first (the order they run in).
    response_middleware: tuple[SecurityMiddleware | XFrameOptionsMiddleware, ...]
    security: SecurityMiddleware | None
    # The header fields of the first answer of each kind (see `_profile_response`).
    fields_by_kind: dict[tuple[bool, bool, str], dict[str, tuple[str, str]]] = field(
        default_factory=dict
    )


# Digits of an id the fast path takes: any `bigint` id, and never so many that `int()`
# refuses them (the view's URL converter answers those).
_MAX_ID_DIGITS = 19


@dataclass(slots=True)
class Claim:
    """A request the fast path answers: whose profile, and the copy L1 holds of it."""

    user_id: int
    profile: CachedValue
    # Called before a claimed request goes on to the view after all (a refusal): the
    # WSGI entry point starts there the Django request cycle it skipped.
    on_hand_over: Callable[[HttpRequest], None] | None = None
    # Whether the fast path answered (False: the view did).
    answered: bool = False

    def hand_over(self, request: HttpRequest, get_response: GetResponse) -> HttpResponseBase:
        """Send ``request`` on to the rest of the stack, and so to the view."""
        if self.on_hand_over is not None:
            self.on_hand_over(request)
        return get_response(request)


class PublicProfileFastPath:
    """Which requests the fast path answers, and its answer, for one middleware stack.

    ``get_response`` is the stack behind the fast path's place in MIDDLEWARE: a claimed
    request the fast path does not answer after all goes on there, and the header-only
    middleware there are run on the fast answers.
    """

    def __init__(self, get_response: GetResponse) -> None:
        self.get_response = get_response
        self._plan: _Plan | None = None
        self._planned = False
        self._lock = threading.Lock()
        # Raw Host values already checked against ALLOWED_HOSTS (for that list object).
        self._hosts: dict[str, bool] = {}
        self._hosts_for: object = None

    def plan(self) -> _Plan | None:
        """Return the plan for the configured stack, or None when the fast path is off."""
        if not self._planned:
            with self._lock:
                if not self._planned:
                    self._plan = _plan_for(self.get_response)
                    self._planned = True
        return self._plan

    def claim(self, request: HttpRequest) -> Claim | None:
        """Return the claim on ``request`` if the fast path answers it (L1 holds the
        profile), else None: the request then goes the usual way untouched.
        """
        plan = self.plan()
        if plan is None or request.method != "GET":
            return None
        path = request.path_info
        if not path.startswith(plan.prefix):
            return None
        digits = path[len(plan.prefix) :]
        if not (digits.isascii() and digits.isdigit()) or len(digits) > _MAX_ID_DIGITS:
            return None
        if not self._eligible(request, plan):
            return None
        user_id = int(digits)
        profile = tiered_cache().peek(user_cache_key(user_id))
        return None if profile is None else Claim(user_id, profile)

    # --- the answer ----------------------------------------------------------------------

    def answer(self, request: HttpRequest, claim: Claim) -> HttpResponseBase:
        """Return the stack's answer to a claimed request: the fast one, or the view's
        (with the rate-limit decisions made here) when a policy refuses it.
        """
        plan = self.plan()
        if plan is None:
            return claim.hand_over(request, self.get_response)
        set_endpoint_label(request, plan.endpoint)
        # The checks go out first (unless sent as the request arrived); the answer is
        # prepared while Redis decides, and is sent only if every policy lets it pass.
        pending: list[Callable[[], Decision]] = []
        try:
            # Every check sent is read back, even if a later step raises: an unread
            # answer would be taken for the next check's on this connection.
            for name in plan.policies:
                pending.append(start_decision(name, request))
            profile = claim.profile
            response = _profile_response(request, plan, profile.etag, profile.data)
        finally:
            decisions = [finish() for finish in pending]
        if not all(decision.allowed for decision in decisions):
            # Refused: the view answers, with the decisions made here.
            setattr(request, PREDECIDED_ATTRIBUTE, dict(zip(plan.policies, decisions, strict=True)))
            return claim.hand_over(request, self.get_response)
        if decisions:
            apply_headers(response, decisions)
        claim.answered = True
        return response

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


class PublicProfileFastPathMiddleware:
    """Answer anonymous ``GET /api/v1/users/{id}`` from L1; hand anything else on."""

    def __init__(self, get_response: GetResponse) -> None:
        self.get_response = get_response
        self.fast_path = PublicProfileFastPath(get_response)

    def __call__(self, request: HttpRequest) -> HttpResponseBase:
        # Claimed by the WSGI entry point already, or tested here.
        claim: Claim | None = request.__dict__.pop(CLAIM_ATTRIBUTE, None)
        if claim is None:
            claim = self.fast_path.claim(request)
            if claim is None:
                return self.get_response(request)
        return self.fast_path.answer(request, claim)


def _profile_response(request: HttpRequest, plan: _Plan, etag: str, data: Any) -> HttpResponse:
    """Return the stack's 200 (or 304 for a matching ``If-None-Match``) for the profile,
    all but its RateLimit fields.

    The header fields are the same for every answer of one kind (status, scheme and
    ``Cache-Control``) but for the ETag and Content-Length: the first answer of each
    kind is built field by field (``_built_response``), and the next ones get a copy of
    its fields, as Django checked and stored them, with those two set over it. Setting
    a field costs more than the rest of the answer, and there are a dozen.
    """
    cache_control = apis.shared_cache_control()
    not_modified = etag in apis.if_none_match(request)
    kind = (not_modified, request.is_secure(), cache_control)
    fields = plan.fields_by_kind.get(kind)
    if fields is None:
        response = _built_response(request, plan, etag, data, cache_control, not_modified)
        # `ResponseHeaders` keeps each field as (name, value) under its lower-cased name.
        plan.fields_by_kind[kind] = dict(response.headers._store)
        return response
    if not_modified:
        body = b""
        response = HttpResponse(status=304)
    else:
        body = apis.rendered_profiles.body(etag, data)
        response = HttpResponse(body)
    response.headers._store = dict(fields)
    # Both already in `fields`, so they keep their place.
    response["ETag"] = etag
    response["Content-Length"] = str(len(body))
    return response


def _built_response(
    request: HttpRequest,
    plan: _Plan,
    etag: str,
    data: Any,
    cache_control: str,
    not_modified: bool,
) -> HttpResponse:
    """Return the answer as the view and the header-only middleware behind make it."""
    headers = {"ETag": etag, "Cache-Control": cache_control}
    if not_modified:
        body = b""
        response = HttpResponse(status=304, headers=headers)
        # DRF drops the type of an empty body.
        del response["Content-Type"]
    else:
        body = apis.rendered_profiles.body(etag, data)
        response = HttpResponse(body, content_type=_JSON, headers=headers)
    for name, value in plan.view_headers:
        response[name] = value
    response["Content-Length"] = str(len(body))
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
