"""The plain Python API: ``hit(policy, key)`` decides and counts one request.

Views use it through the DRF throttle, the decorator or ``decide_request``; tasks and
scripts call ``hit`` directly with any key they like.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Callable, Iterable
from dataclasses import dataclass

from django.conf import settings
from django.http import HttpRequest
from prometheus_client import Counter
from rest_framework.request import Request

from apps.ratelimit import metrics
from apps.ratelimit.backends import Outcome, StoreUnavailable, get_backend
from apps.ratelimit.identity import client_ip, scope_key
from apps.ratelimit.policies import Policy, get_policy
from apps.ratelimit.selectors import override_get

logger = logging.getLogger(__name__)
REQUEST_ATTRIBUTE = "ratelimit_decisions"
# Decisions by policy name that a layer in front of the view (the public profile's fast
# path) already made and recorded for this request; the view's own check takes them
# instead of counting the request again.
PREDECIDED_ATTRIBUTE = "ratelimit_predecided"
# Checks by policy name sent as the request arrived (``EarlyCheckMiddleware``), not read
# yet; the view's own check takes its answer instead of counting the request again.
PRESTARTED_ATTRIBUTE = "ratelimit_prestarted"
# Scopes whose key, for a request without credentials, is its client address.
_ADDRESS_SCOPES = frozenset({"user_or_ip", "ip", "token"})


@dataclass(frozen=True)
class Decision:
    """Whether one request may pass, and the state the RateLimit fields report."""

    policy: Policy
    allowed: bool
    remaining: int
    # Seconds until the next request could pass (0 when this one passed).
    retry_after: float
    # Seconds until the whole quota is available again.
    reset_after: float
    # True when the store failed and the policy's fail mode decided.
    store_failed: bool = False

    @property
    def retry_after_seconds(self) -> int:
        """Return ``retry_after`` rounded up, so a client that waits it is never early."""
        return max(1, math.ceil(self.retry_after)) if not self.allowed else 0

    @property
    def reset_seconds(self) -> int:
        """Return the ``t`` of the RateLimit field: whole seconds, never early.

        On a refusal it is the wait before the next request passes, equal to
        ``Retry-After``; otherwise the time until the full quota is back.
        """
        if not self.allowed:
            return self.retry_after_seconds
        return math.ceil(self.reset_after)


def counter_key(policy: Policy, key: str) -> str:
    """Return the Redis key counting ``key`` under ``policy``."""
    prefix: str = settings.RATELIMIT_KEY_PREFIX
    return f"{prefix}:{policy.name}:{policy.algorithm}:{key}"


def _store_start(policy: Policy, key: str, now_us: int | None) -> Callable[[], Outcome]:
    backend = get_backend(settings.RATELIMIT_REDIS_URL, settings.RATELIMIT_REDIS_TIMEOUT_MS)
    window_us = policy.window * 1_000_000
    if policy.algorithm == "sliding_window":
        return backend.start_sliding_window(
            counter_key(policy, key), window_us, policy.limit, now_us
        )
    interval_us = max(1, window_us // policy.limit)
    return backend.start_gcra(counter_key(policy, key), interval_us, policy.effective_burst, now_us)


def hit(
    policy: Policy | str, key: str, *, user_id: int | None = None, now_us: int | None = None
) -> Decision:
    """Count one request for ``key`` under ``policy`` and return whether it may pass.

    ``user_id`` applies the user's admin override, if any. ``now_us`` (microseconds
    since the epoch) replaces the Redis server's clock, for replaying a timeline in tests
    and simulations. When the store is unreachable the policy's fail mode answers and
    ``ratelimit_errors_total`` rises.
    """
    return start_hit(policy, key, user_id=user_id, now_us=now_us)()


def start_hit(
    policy: Policy | str, key: str, *, user_id: int | None = None, now_us: int | None = None
) -> Callable[[], Decision]:
    """Send ``hit``'s check to the store; return the function that gives its Decision.

    Work done between the two overlaps the store's round trip. The returned function
    must be called exactly once, before this thread checks anything else.
    """
    resolved = get_policy(policy) if isinstance(policy, str) else policy
    if user_id is not None:
        override = override_get(user_id=user_id, policy=resolved.name)
        if override is not None:
            resolved = resolved.with_rate(*override)
    try:
        pending = _store_start(resolved, key, now_us)
    except StoreUnavailable as exc:
        failed = _store_failed(resolved, exc)
        return lambda: failed

    def finish() -> Decision:
        try:
            outcome = pending()
        except StoreUnavailable as exc:
            return _store_failed(resolved, exc)
        _count_decision(resolved.name, outcome.allowed)
        return Decision(
            resolved,
            outcome.allowed,
            outcome.remaining,
            outcome.retry_after_us / 1_000_000,
            outcome.reset_after_us / 1_000_000,
        )

    return finish


def _store_failed(policy: Policy, exc: StoreUnavailable) -> Decision:
    """Count the failure and return the decision of the policy's fail mode."""
    metrics.ERRORS.labels(policy.name).inc()
    if not exc.breaker_open:
        logger.warning(
            "Rate limiter store unavailable for policy %s (%s): %s",
            policy.name,
            "failing open" if policy.fail_open else "failing closed",
            exc,
        )
    _count_decision(policy.name, policy.fail_open)
    return Decision(policy, policy.fail_open, 0, 1.0, 0.0, store_failed=True)


# The labelled counter per (policy, allowed): `labels()` validates and locks on every
# call, a dict lookup does not. Bounded by the declared policies.
_decision_counters: dict[tuple[str, bool], Counter] = {}


def _count_decision(policy_name: str, allowed: bool) -> None:
    counter = _decision_counters.get((policy_name, allowed))
    if counter is None:
        outcome = "allowed" if allowed else "refused"
        counter = _decision_counters[policy_name, allowed] = metrics.DECISIONS.labels(
            policy_name, outcome
        )
    counter.inc()


def decide_request(policy_name: str, request: HttpRequest | Request) -> Decision:
    """Count ``request`` under the named policy and remember the decision on it.

    The remembered decisions become the response's RateLimit fields
    (``RateLimitHeadersMiddleware``). A DRF request is accepted as such, so that its
    authenticated user and parsed body are what the scope sees. A decision already
    made for this request and policy by an earlier layer (see ``PREDECIDED_ATTRIBUTE``)
    is returned instead of counting the request twice.
    """
    return start_decision(policy_name, request)()


def start_decision(policy_name: str, request: HttpRequest | Request) -> Callable[[], Decision]:
    """Send ``decide_request``'s check; return the function that gives (and records) it.

    As with ``start_hit``, the returned function must be called exactly once.
    """
    # Kept on the Django request, the object the middleware sees.
    django_request: HttpRequest = getattr(request, "_request", request)
    predecided: dict[str, Decision] | None = django_request.__dict__.get(PREDECIDED_ATTRIBUTE)
    if predecided and policy_name in predecided:
        known = predecided.pop(policy_name)
        return lambda: known
    policy = get_policy(policy_name)
    key, user_id = scope_key(policy.scope, request)
    prestarted: dict[str, EarlyCheck] | None = django_request.__dict__.get(PRESTARTED_ATTRIBUTE)
    early = prestarted.pop(policy_name, None) if prestarted else None
    if early is not None:
        if early.key == key and user_id is None:
            return lambda: record_decision(django_request, early.pending())
        # Sent for someone the request turned out not to be (a custom authentication
        # class): its answer is read and dropped; this check counts the right key.
        early.pending()
    pending = start_hit(policy, key, user_id=user_id)
    return lambda: record_decision(django_request, pending())


def record_decision(request: HttpRequest, decision: Decision) -> Decision:
    """Remember ``decision`` on ``request`` for its RateLimit fields; return it."""
    decisions: list[Decision] | None = request.__dict__.get(REQUEST_ATTRIBUTE)
    if decisions is None:
        setattr(request, REQUEST_ATTRIBUTE, [decision])
    else:
        decisions.append(decision)
    return decision


@dataclass(frozen=True)
class EarlyCheck:
    """A check sent before the view asked for it: the key it counted, and its reader."""

    key: str
    pending: Callable[[], Decision]


def start_early_checks(request: HttpRequest, policy_names: Iterable[str]) -> bool:
    """Send the checks of ``policy_names`` for ``request`` now, for its view to take.

    Only for a request without credentials (no ``Authorization`` header, no session
    cookie) and policies whose key is then its client address: the key is known before
    anything reads a session or a token, and Redis decides while the rest of the stack
    runs. Return whether any check was sent; ``finish_early_checks`` must follow.
    """
    meta = request.META
    if "HTTP_AUTHORIZATION" in meta or (
        "HTTP_COOKIE" in meta and settings.SESSION_COOKIE_NAME in request.COOKIES
    ):
        return False
    checks: dict[str, EarlyCheck] = {}
    for name in policy_names:
        policy = get_policy(name)
        if policy.scope in _ADDRESS_SCOPES and name not in checks:
            key = f"ip:{client_ip(request)}"
            checks[name] = EarlyCheck(key, start_hit(policy, key))
    if checks:
        setattr(request, PRESTARTED_ATTRIBUTE, checks)
    return bool(checks)


def finish_early_checks(request: HttpRequest) -> list[Decision]:
    """Read the early checks no view took (it refused the request first, or never ran).

    The request was counted all the same, so their decisions are recorded like any
    other and returned.
    """
    checks: dict[str, EarlyCheck] = request.__dict__.pop(PRESTARTED_ATTRIBUTE, None) or {}
    return [record_decision(request, check.pending()) for check in checks.values()]
