"""Logging helpers that add the request id to every record."""

from __future__ import annotations

import logging

from apps.core.http.request_context import current_request_id


class RequestIdFilter(logging.Filter):
    """Attach ``request_id`` (or ``-``) to each record."""

    def filter(self, record: logging.LogRecord) -> bool:
        record.request_id = current_request_id() or "-"
        return True
