"""Structured logs: one JSON object per line, carrying request, user and trace ids."""

from __future__ import annotations

import json
import logging
import math
import threading
import time
from contextvars import ContextVar
from datetime import UTC, datetime
from typing import Any

from django.utils.functional import SimpleLazyObject, empty
from opentelemetry import trace

from apps.core.forks import ProcessLocal
from apps.core.http.request_context import current_request_id

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
    # Django has no public test for "evaluated yet"; evaluating would cost a query.
    # tests/observability/test_logging.py fails if SimpleLazyObject stops using it.
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
        attributes = record.__dict__
        payload: dict[str, Any] = {
            "timestamp": _timestamp(record.created),
            "level": record.levelname,
            "logger": record.name,
            "message": record.getMessage(),
            "request_id": _or_none(attributes.get("request_id")),
            "user_id": attributes.get("user_id"),
            "trace_id": attributes.get("trace_id"),
        }
        # Set arithmetic first (in C): most records carry few extras or none.
        if attributes.keys() - _STANDARD_ATTRIBUTES:
            for key in [key for key in attributes if key not in _STANDARD_ATTRIBUTES]:
                if key not in payload:
                    payload[key] = attributes[key]
        if record.exc_info:
            payload["exception"] = self.formatException(record.exc_info)
        if record.stack_info:
            payload["stack"] = self.formatStack(record.stack_info)
        return _dumps(payload)


def _timestamp(created: float) -> str:
    """Return ``created`` as ISO 8601 in UTC with milliseconds (``…T12:00:00.123+00:00``).

    The same text as ``datetime.fromtimestamp(created, UTC).isoformat(timespec=
    "milliseconds")``, with the part up to the second formatted once per second.
    """
    global _second
    second = math.floor(created)
    # As datetime does: the fraction rounded half-even to microseconds, then truncated.
    micros = round((created - second) * 1_000_000)
    if micros >= 1_000_000:
        second, micros = second + 1, micros - 1_000_000
    cached_second, prefix = _second
    if cached_second != second:
        prefix = datetime.fromtimestamp(second, tz=UTC).isoformat(timespec="seconds")[:-6]
        _second = (second, prefix)
    return f"{prefix}.{micros // 1000:03d}+00:00"


_second: tuple[int, str] = (-1, "")


# `json.dumps(payload, default=str, ensure_ascii=False)`, without building an encoder
# per line: C's encoder, made once (no circular check: a log payload holds no cycles,
# and `default=str` turns anything else into a string).
_c_encoder = getattr(json.encoder, "c_make_encoder", None)
_fallback_encoder = json.JSONEncoder(default=str, ensure_ascii=False)


if _c_encoder is not None:
    _encode = _c_encoder(
        None,
        str,
        json.encoder.encode_basestring,
        None,
        ": ",
        ", ",
        False,
        False,
        True,
    )

    def _dumps(payload: dict[str, Any]) -> str:
        try:
            return "".join(_encode(payload, 0))
        except (ValueError, RecursionError):
            # A cycle in an extra: the checked encoder names the problem.
            return json.dumps(payload, default=str, ensure_ascii=False)

else:  # pragma: no cover -- CPython always has the C encoder

    def _dumps(payload: dict[str, Any]) -> str:
        return _fallback_encoder.encode(payload)


class AccessRecord(logging.LogRecord):
    """A ``LogRecord`` built for one access line, at a fraction of the usual cost.

    ``LogRecord.__init__`` works out the caller's file and module from a path, the
    thread's and process's names and more, on every record; an access line has no
    caller worth naming, and the process never changes its name. The attributes are
    the same as any record's, so every handler and formatter treats it as one.
    """

    def __init__(self, name: str, msg: str, args: tuple[Any, ...], extra: dict[str, Any]) -> None:
        attributes = self.__dict__
        attributes.update(_record_constants.get())
        now = time.time()
        attributes["name"] = name
        attributes["msg"] = msg
        attributes["args"] = args
        attributes["created"] = now
        attributes["msecs"] = int((now - int(now)) * 1000) + 0.0
        attributes["relativeCreated"] = (now - _LOGGING_STARTED) * 1000
        attributes["thread"] = threading.get_ident()
        attributes["threadName"] = threading.current_thread().name
        attributes.update(extra)


# When logging was imported, as `relativeCreated` counts from (logging's own `_startTime`).
_LOGGING_STARTED: float = getattr(logging, "_startTime", time.time())


def _make_record_constants() -> dict[str, Any]:
    """Return the attributes every access record of this process shares (pid included)."""
    template = logging.LogRecord("", logging.INFO, "(unknown file)", 0, "", (), None)
    return {
        key: template.__dict__[key]
        for key in (
            "levelname",
            "levelno",
            "pathname",
            "filename",
            "module",
            "exc_info",
            "exc_text",
            "stack_info",
            "lineno",
            "funcName",
            "processName",
            "process",
        )
    }


_record_constants: ProcessLocal[dict[str, Any]] = ProcessLocal(_make_record_constants)


def _or_none(value: Any) -> Any:
    return None if value in (None, "-") else value
