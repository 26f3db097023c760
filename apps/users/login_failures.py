"""Failed logins: counted in metrics and logged, with the username but never a password."""

from __future__ import annotations

import logging
from typing import Literal

from django.http import HttpRequest
from prometheus_client import Counter
from rest_framework.request import Request

from apps.ratelimit.identity import client_ip, login_username

LoginEndpoint = Literal["admin", "api"]
LOGIN_ENDPOINTS: tuple[LoginEndpoint, ...] = ("admin", "api")

LOGIN_FAILURES = Counter(
    "auth_login_failures_total",
    "Logins refused for wrong credentials, by endpoint (admin or api).",
    ["endpoint"],
)
# Both series exist from the start, so a rate over them is defined before any failure.
for _endpoint in LOGIN_ENDPOINTS:
    LOGIN_FAILURES.labels(_endpoint)

logger = logging.getLogger(__name__)


def login_failure_record(*, endpoint: LoginEndpoint, request: HttpRequest | Request) -> None:
    """Count and log one failed login at ``endpoint``: who tried, from where, not with what."""
    LOGIN_FAILURES.labels(endpoint).inc()
    logger.warning(
        "Failed %s login for username %r from %s",
        endpoint,
        login_username(request),
        client_ip(request),
    )
