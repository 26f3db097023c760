"""Render every API error in the one shape: ``{"detail": ..., "errors": {...}}``."""

from __future__ import annotations

import logging
import math
from typing import Any

from django.core.exceptions import PermissionDenied, RequestDataTooBig
from django.db import IntegrityError
from django.http import Http404
from rest_framework import exceptions as drf_exceptions
from rest_framework.response import Response
from rest_framework.views import set_rollback

from apps.core.db.failures import is_connection_failure
from apps.core.db.middleware import replica_failed_under
from apps.core.db.remote import is_remote_server_failure
from apps.core.http.errors import ApplicationError
from apps.core.http.responses import error_body

logger = logging.getLogger(__name__)
# What a client is told to wait after a shard did not answer.
SHARD_RETRY_AFTER_SECONDS = 5


def api_exception_handler(exc: Exception, context: dict[str, Any]) -> Response | None:
    """Turn application, DRF and Django errors into a JSON response with the right 4xx.

    A shard the database could not reach is a 503 with ``Retry-After``.
    Anything else is left to Django, whose 500 handler also answers in JSON.
    """
    headers: dict[str, str] = {}
    if isinstance(exc, ApplicationError):
        status, body = exc.status_code, error_body(exc.detail, exc.errors)
    elif isinstance(exc, IntegrityError):
        # A constraint checked at commit (a deferred foreign key to a row deleted
        # meanwhile) is a lost race, not a server fault: nothing was written, and the
        # client may retry.
        logger.warning("Integrity error answered with 409", exc_info=exc)
        status, body = 409, error_body("The request conflicted with a concurrent change; retry.")
    elif is_remote_server_failure(exc):
        # A shard that is down or too slow: this request fails fast, others go on.
        logger.warning("A database server did not answer; answered with 503", exc_info=exc)
        status = 503
        body = error_body("A database server did not answer in time; retry shortly.")
        headers["Retry-After"] = str(SHARD_RETRY_AFTER_SECONDS)
    elif is_connection_failure(exc):
        if replica_failed_under(context["request"], exc):
            return None  # read again from the primary by the routing middleware
        # The database refused or dropped the connection, or cancelled the statement
        # (a failover, a restart, a statement timeout). The client retries: a write
        # carries its Idempotency-Key, so one lost at COMMIT is replayed, not repeated.
        logger.warning("Database unavailable, answered with 503", exc_info=exc)
        status, body = 503, error_body("The database is unavailable; retry shortly.")
        headers["Retry-After"] = "1"
    elif isinstance(exc, RequestDataTooBig):
        status, body = 413, error_body("Request body is too large.")
    elif isinstance(exc, Http404):
        status, body = 404, error_body("Not found.")
    elif isinstance(exc, PermissionDenied):
        status, body = 403, error_body("You do not have permission to perform this action.")
    elif isinstance(exc, drf_exceptions.ValidationError):
        detail = exc.detail
        errors = detail if isinstance(detail, dict) else {"non_field_errors": detail}
        status, body = 400, error_body("Invalid input.", errors)
    elif isinstance(exc, drf_exceptions.APIException):
        status, body = exc.status_code, error_body(_text(exc.detail))
        wait = getattr(exc, "wait", None)
        if isinstance(exc, drf_exceptions.Throttled) and wait is not None:
            headers["Retry-After"] = str(max(1, math.ceil(wait)))
        auth_header = getattr(exc, "auth_header", None)
        if auth_header:
            headers["WWW-Authenticate"] = auth_header
    else:
        return None
    set_rollback()
    return Response(body, status=status, headers=headers)


def _text(detail: Any) -> str:
    if isinstance(detail, list | tuple) and detail:
        return _text(detail[0])
    if isinstance(detail, dict) and "detail" in detail:
        return _text(detail["detail"])
    return str(detail)
