"""Rate-limit policies: declared in ``settings.RATELIMIT_POLICIES``, resolved per call.

A policy names what is counted (its scope), how many requests a window admits, the
algorithm, and what happens when the store is unreachable. ``RATELIMIT_OVERRIDES``
(environment) replaces a policy's rate; a per-user ``RateLimitOverride`` row replaces
it for one user.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from functools import cached_property
from typing import Any, Literal

from django.conf import settings
from django.core.exceptions import ImproperlyConfigured

Algorithm = Literal["gcra", "sliding_window"]
ALGORITHMS: tuple[Algorithm, ...] = ("gcra", "sliding_window")
# Built-in scopes; any other value is the dotted path of a ``key(request) -> str``.
BUILTIN_SCOPES = ("user_or_ip", "ip", "ip_username", "token")


@dataclass(frozen=True)
class Policy:
    """One rate limit: ``limit`` requests per ``window`` seconds for each scope key."""

    name: str
    limit: int
    window: int
    scope: str = "user_or_ip"
    algorithm: Algorithm = "gcra"
    # GCRA only: how many requests may arrive at once; defaults to ``limit``.
    burst: int | None = None
    fail_open: bool = True
    # The policy's name in the RateLimit fields; the contract calls the API's "default".
    header_name: str = ""

    @property
    def effective_burst(self) -> int:
        """Return the GCRA burst: ``burst`` when set, else ``limit``."""
        return self.burst or self.limit

    @property
    def label(self) -> str:
        """Return the name used in the ``RateLimit`` and ``RateLimit-Policy`` fields."""
        return self.header_name or self.name

    @cached_property
    def field_label(self) -> str:
        """Return ``label`` as a Structured Field string (quoted, escaped), built once."""
        escaped = self.label.replace("\\", "\\\\").replace('"', '\\"')
        return f'"{escaped}"'

    @cached_property
    def policy_member(self) -> str:
        """Return this policy's member of the ``RateLimit-Policy`` field, built once."""
        return f"{self.field_label};q={self.limit};w={self.window}"

    def with_rate(self, limit: int, window: int) -> Policy:
        """Return this policy with another rate; a fixed burst scales along with it."""
        burst = None if self.burst is None else max(1, self.burst * limit // self.limit)
        return replace(self, limit=limit, window=window, burst=burst)


def policy_from_config(name: str, config: dict[str, Any]) -> Policy:
    """Build a policy from its settings entry; raise ImproperlyConfigured when invalid."""
    try:
        policy = Policy(name=name, **config)
    except TypeError as exc:
        raise ImproperlyConfigured(f"RATELIMIT_POLICIES[{name!r}]: {exc}") from None
    if policy.algorithm not in ALGORITHMS:
        raise ImproperlyConfigured(
            f"RATELIMIT_POLICIES[{name!r}]: algorithm {policy.algorithm!r} is not one of "
            f"{', '.join(ALGORITHMS)}."
        )
    if policy.limit < 1 or policy.window < 1 or (policy.burst is not None and policy.burst < 1):
        raise ImproperlyConfigured(
            f"RATELIMIT_POLICIES[{name!r}]: limit, window and burst must be at least 1."
        )
    if policy.scope not in BUILTIN_SCOPES and "." not in policy.scope:
        raise ImproperlyConfigured(
            f"RATELIMIT_POLICIES[{name!r}]: scope {policy.scope!r} is neither one of "
            f"{', '.join(BUILTIN_SCOPES)} nor the dotted path of a key function."
        )
    return policy


# Resolved policies by name. The API resolves its policy on every request, and building
# one validates its settings entry; `forget_resolved_policies` empties this when the
# settings change (tests, tools).
_resolved: dict[str, Policy] = {}


def get_policy(name: str) -> Policy:
    """Return the policy ``name`` as configured, with its environment override applied.

    Raise ImproperlyConfigured when no such policy is declared.
    """
    policy = _resolved.get(name)
    if policy is None:
        policy = _resolved[name] = _build_policy(name)
    return policy


def forget_resolved_policies(*, setting: str = "", **kwargs: Any) -> None:
    """Drop the resolved policies when a rate-limit setting changes (``setting_changed``)."""
    if setting in ("RATELIMIT_POLICIES", "RATELIMIT_OVERRIDES"):
        _resolved.clear()


def _build_policy(name: str) -> Policy:
    declared: dict[str, dict[str, Any]] = settings.RATELIMIT_POLICIES
    if name not in declared:
        raise ImproperlyConfigured(f"Rate-limit policy {name!r} is not in RATELIMIT_POLICIES.")
    policy = policy_from_config(name, declared[name])
    overrides: dict[str, tuple[int, int]] = settings.RATELIMIT_OVERRIDES
    if name in overrides:
        policy = policy.with_rate(*overrides[name])
    return policy


def validate_policies() -> None:
    """Build every declared policy once, so a bad entry stops the process at start."""
    for name in settings.RATELIMIT_POLICIES:
        get_policy(name)
