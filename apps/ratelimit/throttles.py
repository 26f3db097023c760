"""DRF throttles backed by the rate-limit policies; ``ApiRateThrottle`` is the API default."""

from __future__ import annotations

from typing import Any, ClassVar

from rest_framework.request import Request
from rest_framework.throttling import BaseThrottle

from apps.ratelimit.errors import RateLimiterUnavailable
from apps.ratelimit.identity import client_ip
from apps.ratelimit.limiter import Decision, decide_request


class PolicyThrottle(BaseThrottle):
    """Throttle by the policy named ``policy_name``; refused requests get 429."""

    policy_name: ClassVar[str]

    def __init__(self) -> None:
        self.decision: Decision | None = None

    def allow_request(self, request: Request, view: Any) -> bool:
        """Count the request; raise 503 when a fail-closed policy cannot be checked."""
        self.decision = decide_request(self.policy_name, request)
        if self.decision.store_failed and not self.decision.allowed:
            raise RateLimiterUnavailable()
        return self.decision.allowed

    def get_ident(self, request: Request) -> str:
        """Return the client address, through trusted proxies only."""
        return client_ip(request)

    def wait(self) -> float | None:
        """Return the whole seconds until a request can pass; DRF sends it as Retry-After."""
        if self.decision is None or self.decision.allowed:
            return None
        return float(self.decision.retry_after_seconds)


class ApiRateThrottle(PolicyThrottle):
    """The API's default policy: per user, per client address when anonymous."""

    policy_name = "api"


class LoginRateThrottle(PolicyThrottle):
    """Token login: per client address and username; refuses when Redis is down."""

    policy_name = "login"
