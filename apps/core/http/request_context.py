"""Per-request values kept in context variables, so nothing leaks between requests."""

from __future__ import annotations

import re
import uuid
from contextvars import ContextVar

REQUEST_ID_HEADER = "X-Request-ID"
_REQUEST_ID_RE = re.compile(r"^[A-Za-z0-9._:-]{8,128}$")

request_id_var: ContextVar[str | None] = ContextVar("request_id", default=None)


def new_request_id() -> str:
    """Return a fresh random request id."""
    return uuid.uuid4().hex


def accept_request_id(raw: str | None) -> str:
    """Return ``raw`` when it is a well-formed request id, otherwise a new one.

    Only short ids of safe characters are accepted: the id is copied into log lines,
    headers and events, where a client-chosen value must not inject anything.
    """
    if raw and _REQUEST_ID_RE.match(raw):
        return raw
    return new_request_id()


def current_request_id() -> str | None:
    """Return the id of the request or task being handled, if any."""
    return request_id_var.get()
