"""The plain Python API: ``hit(policy, key)`` decides and counts one request.

Views use it through the DRF throttle, the decorator or ``decide_request``; tasks and
scripts call ``hit`` directly with any key they like.
"""

from __future__ import annotations

import logging
import math
from dataclasses import dataclass

from django.conf import settings
from django.http import HttpRequest
from rest_framework.request import Request

from apps.ratelimit import metrics
from apps.ratelimit.backends import Outcome, StoreUnavailable, get_backend
from apps.ratelimit.identity import scope_key
from apps.ratelimit.policies import Policy, get_policy
from apps.ratelimit.selectors import override_get

logger = logging.getLogger(__name__)
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
    """Return the Redis key counting ``key`` under ``policy``."""
    prefix: str = settings.RATELIMIT_KEY_PREFIX
    return f"{prefix}:{policy.name}:{policy.algorithm}:{key}"


def _store_outcome(policy: Policy, key: str, now_us: int | None) -> Outcome:
    backend = get_backend(settings.RATELIMIT_REDIS_URL, settings.RATELIMIT_REDIS_TIMEOUT_MS)
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
        outcome = _store_outcome(resolved, key, now_us)
    except StoreUnavailable as exc:
        metrics.ERRORS.labels(resolved.name).inc()
        if not exc.breaker_open:
            logger.warning(
                "Rate limiter store unavailable for policy %s (%s): %s",
                resolved.name,
                "failing open" if resolved.fail_open else "failing closed",
                exc,
            )
        allowed = resolved.fail_open
        metrics.DECISIONS.labels(resolved.name, "allowed" if allowed else "refused").inc()
        return Decision(resolved, allowed, 0, 1.0, 0.0, store_failed=True)
    metrics.DECISIONS.labels(resolved.name, "allowed" if outcome.allowed else "refused").inc()
    return Decision(
        resolved,
        outcome.allowed,
        outcome.remaining,
        outcome.retry_after_us / 1_000_000,
        outcome.reset_after_us / 1_000_000,
    )


def decide_request(policy_name: str, request: HttpRequest | Request) -> Decision:
    """Count ``request`` under the named policy and remember the decision on it.

    The remembered decisions become the response's RateLimit fields
    (``RateLimitHeadersMiddleware``). A DRF request is accepted as such, so that its
    authenticated user and parsed body are what the scope sees.
    """
    policy = get_policy(policy_name)
    key, user_id = scope_key(policy.scope, request)
    decision = hit(policy, key, user_id=user_id)
    # Kept on the Django request, the object the middleware sees.
    django_request: HttpRequest = getattr(request, "_request", request)
    decisions: list[Decision] = getattr(django_request, REQUEST_ATTRIBUTE, [])
    decisions.append(decision)
    setattr(django_request, REQUEST_ATTRIBUTE, decisions)
    return decision
