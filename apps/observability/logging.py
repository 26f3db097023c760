"""Structured logs: one JSON object per line, carrying request, user and trace ids."""

from __future__ import annotations

import json
import logging
from contextvars import ContextVar
from datetime import UTC, datetime
from typing import Any

from django.utils.functional import SimpleLazyObject, empty
from opentelemetry import trace

from apps.core.request_context import current_request_id

# The request being handled, so a log line can name its user without a query.
current_request: ContextVar[Any] = ContextVar("observability_request", default=None)

# Attributes every LogRecord has; anything else on a record came from ``extra=``.
_STANDARD_ATTRIBUTES = frozenset(logging.LogRecord("", 0, "", 0, "", (), None).__dict__) | {
    "message",
    "asctime",
    "request_id",
    "user_id",
    "trace_id",
    "span_id",
    "taskName",
}


def current_user_id() -> int | None:
    """Return the id of the authenticated user of the current request, if already known.

    A user Django has not loaded yet (a lazy object never evaluated) is left alone:
    logging must not cost a database query.
    """
    request = current_request.get()
    if request is None:
        return None
    user = request.__dict__.get("user")
    if user is None:
        return None
    if isinstance(user, SimpleLazyObject) and user._wrapped is empty:
        return None
    if not getattr(user, "is_authenticated", False):
        return None
    pk = getattr(user, "pk", None)
    return pk if isinstance(pk, int) else None


def current_trace_id() -> str | None:
    """Return the current OpenTelemetry trace id as 32 hex digits, if a span is active."""
    context = trace.get_current_span().get_span_context()
    return format(context.trace_id, "032x") if context.is_valid else None


class ContextFilter(logging.Filter):
    """Attach ``request_id``, ``user_id`` and ``trace_id`` to every record."""

    def filter(self, record: logging.LogRecord) -> bool:
        record.request_id = current_request_id() or "-"
        record.user_id = current_user_id()
        record.trace_id = current_trace_id()
        return True


class JsonFormatter(logging.Formatter):
    """Format a record as one JSON object on one line."""

    def format(self, record: logging.LogRecord) -> str:
        payload: dict[str, Any] = {
            "timestamp": datetime.fromtimestamp(record.created, tz=UTC).isoformat(
                timespec="milliseconds"
            ),
            "level": record.levelname,
            "logger": record.name,
            "message": record.getMessage(),
            "request_id": _or_none(getattr(record, "request_id", None)),
            "user_id": getattr(record, "user_id", None),
            "trace_id": getattr(record, "trace_id", None),
        }
        for key, value in record.__dict__.items():
            if key not in _STANDARD_ATTRIBUTES and key not in payload:
                payload[key] = value
        if record.exc_info:
            payload["exception"] = self.formatException(record.exc_info)
        if record.stack_info:
            payload["stack"] = self.formatStack(record.stack_info)
        return json.dumps(payload, default=str, ensure_ascii=False)


def _or_none(value: Any) -> Any:
    return None if value in (None, "-") else value
