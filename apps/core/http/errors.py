"""Typed application errors that domain code raises and the API renders as 4xx JSON."""

from __future__ import annotations

from collections.abc import Mapping, Sequence


class ApplicationError(Exception):
    """Base of every error a client caused; rendered as ``{"detail": ...}``."""

    status_code = 400
    default_detail = "The request could not be processed."

    def __init__(
        self,
        detail: str | None = None,
        *,
        errors: Mapping[str, Sequence[str]] | None = None,
    ) -> None:
        self.detail = detail or self.default_detail
        self.errors = dict(errors) if errors else None
        super().__init__(self.detail)


class InvalidInput(ApplicationError):
    """Input that parsed but breaks a rule; carries per-field messages."""

    status_code = 400
    default_detail = "Invalid input."


class NotFound(ApplicationError):
    """The resource does not exist, or is not the caller's to see."""

    status_code = 404
    default_detail = "Not found."


class Conflict(ApplicationError):
    """The request conflicts with one still being processed."""

    status_code = 409
    default_detail = "A request with this Idempotency-Key is still being processed."


class Unprocessable(ApplicationError):
    """The request is well-formed but contradicts an earlier one."""

    status_code = 422
    default_detail = "The request cannot be processed."
