"""The plain Python API: ``hit(policy, key)`` decides and counts one request.

Views use it through the DRF throttle or the decorator (both call ``decide_request``,
once per request and policy); tasks and scripts call ``hit`` with any key they like.
"""

from __future__ import annotations

import logging
import math
from dataclasses import dataclass

from django.conf import settings
from django.http import HttpRequest
from prometheus_client import Counter
from rest_framework.request import Request

from apps.ratelimit import metrics
from apps.ratelimit.backends import Outcome, StoreUnavailable, get_backend
from apps.ratelimit.identity import scope_key
from apps.ratelimit.policies import Policy, get_policy
from apps.ratelimit.selectors import override_get

logger = logging.getLogger(__name__)
# The request's list of decisions, which become its response's RateLimit fields.
REQUEST_ATTRIBUTE = "ratelimit_decisions"


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
    """Return the Redis key counting ``key`` under ``policy``.

    The part after the prefix is the hash tag: on a Redis Cluster everything one decision
    touches lives in that key's slot, on whichever master serves it.
    """
    prefix: str = settings.RATELIMIT_KEY_PREFIX
    return f"{prefix}:{{{policy.name}:{policy.algorithm}:{key}}}"


def _store_check(policy: Policy, key: str, now_us: int | None) -> Outcome:
    backend = get_backend(settings.RATELIMIT_REDIS, settings.RATELIMIT_REDIS_TIMEOUT_MS)
    window_us = policy.window * 1_000_000
    if policy.algorithm == "sliding_window":
        return backend.sliding_window(counter_key(policy, key), window_us, policy.limit, now_us)
    interval_us = max(1, window_us // policy.limit)
    return backend.gcra(counter_key(policy, key), interval_us, policy.effective_burst, now_us)


def hit(
    policy: Policy | str, key: str, *, user_id: int | None = None, now_us: int | None = None
) -> Decision:
    """Count one request for ``key`` under ``policy`` and return whether it may pass.

    ``user_id`` applies the user's admin override, if any. ``now_us`` (microseconds
    since the epoch) replaces the Redis server's clock, for replaying a timeline in tests
    and simulations. When the store is unreachable the policy's fail mode answers and
    ``ratelimit_errors_total`` rises.
    """
    resolved = get_policy(policy) if isinstance(policy, str) else policy
    if user_id is not None:
        override = override_get(user_id=user_id, policy=resolved.name)
        if override is not None:
            resolved = resolved.with_rate(*override)
    try:
        outcome = _store_check(resolved, key, now_us)
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
    authenticated user and parsed body are what the scope sees.
    """
    policy = get_policy(policy_name)
    key, user_id = scope_key(policy.scope, request)
    return record_decision(request, hit(policy, key, user_id=user_id))


def record_decision(request: HttpRequest | Request, decision: Decision) -> Decision:
    """Remember ``decision`` on ``request`` for its RateLimit fields; return it.

    ``RateLimitHeadersMiddleware`` puts the list on the Django request before the view
    runs; a DRF request reads it from there (DRF's ``Request`` proxies the attributes
    of the request it wraps), so both record into the list the middleware reports.
    """
    decisions: list[Decision] | None = getattr(request, REQUEST_ATTRIBUTE, None)
    if decisions is None:
        decisions = []
        setattr(request, REQUEST_ATTRIBUTE, decisions)
    decisions.append(decision)
    return decision
