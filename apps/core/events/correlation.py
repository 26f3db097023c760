"""Carry the request's correlation id (``X-Request-ID``) into tasks and their log lines.

The id travels as a message header; a task sets it as the current request id while it
runs, so ``RequestIdFilter`` puts it in every log record of the consumer, and any task
or event the consumer emits carries it on.
"""

from __future__ import annotations

from contextvars import Token
from typing import Any

from apps.core.http.request_context import accept_request_id, current_request_id, request_id_var

# Message header that carries the correlation id.
# Not "correlation_id": Celery fills that field of a task request with the task id.
CORRELATION_HEADER = "x_correlation_id"

_tokens: dict[str, Token[str | None]] = {}


def add_correlation_header(headers: dict[str, Any] | None = None, **_: Any) -> None:
    """Before a task is published, give it the current correlation id unless it has one."""
    if headers is None or headers.get(CORRELATION_HEADER):
        return
    request_id = current_request_id()
    if request_id:
        headers[CORRELATION_HEADER] = request_id


def enter_task_context(task_id: str | None = None, task: Any = None, **_: Any) -> None:
    """Before a task runs, make its correlation id the current request id."""
    if task is None or task_id is None:
        return
    raw = task.request.get(CORRELATION_HEADER)
    # Only a well-formed id is kept; anything else gets a fresh one, as for requests.
    request_id = accept_request_id(raw) if raw else current_request_id() or accept_request_id(None)
    _tokens[task_id] = request_id_var.set(request_id)


def leave_task_context(task_id: str | None = None, **_: Any) -> None:
    """After a task ran, restore the request id it found."""
    token = _tokens.pop(task_id or "", None)
    if token is not None:
        request_id_var.reset(token)
