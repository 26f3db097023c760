"""Counters of rate-limit decisions, per policy, for the metrics endpoint to expose."""

from __future__ import annotations

from prometheus_client import Counter

DECISIONS = Counter(
    "ratelimit_decisions_total",
    "Rate-limit decisions by policy and outcome (allowed or refused).",
    ["policy", "outcome"],
)
ERRORS = Counter(
    "ratelimit_errors_total",
    "Decisions the store could not make in time; the policy's fail mode answered instead.",
    ["policy"],
)
