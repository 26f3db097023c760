"""The IETF RateLimit fields (draft-ietf-httpapi-ratelimit-headers) and the 429 response.

Both fields are Structured Field Lists (RFC 8941): one member per policy that decided
the request, e.g. ``RateLimit-Policy: "default";q=100;w=60`` and
``RateLimit: "default";r=42;t=60``.
"""

from __future__ import annotations

from collections.abc import Sequence

from django.http import HttpResponseBase, JsonResponse

from apps.core.http.responses import error_response
from apps.ratelimit.limiter import Decision

POLICY_FIELD = "RateLimit-Policy"
STATE_FIELD = "RateLimit"


def policy_field(decisions: Sequence[Decision]) -> str:
    """Return the ``RateLimit-Policy`` value: each policy's quota and window."""
    return ", ".join([d.policy.policy_member for d in decisions])


def state_field(decisions: Sequence[Decision]) -> str:
    """Return the ``RateLimit`` value: remaining quota and seconds until it returns."""
    return ", ".join(
        [f"{d.policy.field_label};r={d.remaining};t={d.reset_seconds}" for d in decisions]
    )


def apply_headers(response: HttpResponseBase, decisions: Sequence[Decision]) -> None:
    """Add the RateLimit fields, and ``Retry-After`` when a decision refused.

    Decisions the store could not make carry no quota state, so they add no fields; a
    refusal among them still gets a ``Retry-After``.
    """
    known = [d for d in decisions if not d.store_failed]
    if known:
        response[POLICY_FIELD] = policy_field(known)
        response[STATE_FIELD] = state_field(known)
    refused = [d for d in decisions if not d.allowed]
    if refused:
        wait = max(d.retry_after_seconds for d in refused)
        # Never earlier than the limit resets, whatever an earlier layer put there.
        current = response.get("Retry-After", "")
        response["Retry-After"] = str(max(wait, int(current) if current.isdigit() else 0))


def refused_response(decision: Decision) -> JsonResponse:
    """Return the JSON 429 (or 503 for a fail-closed store failure) for ``decision``."""
    if decision.store_failed:
        return error_response(503, "Rate limiting is temporarily unavailable; retry in a moment.")
    return error_response(
        429,
        f"Request was throttled. Expected available in {decision.retry_after_seconds} seconds.",
    )
