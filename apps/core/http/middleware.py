"""Middleware shared by every app: request ids and the request body limit."""

from __future__ import annotations

import random
from collections.abc import Callable

from django.conf import settings
from django.http import HttpRequest, HttpResponseBase

from apps.core.forks import ProcessLocal
from apps.core.http.request_context import REQUEST_ID_HEADER, accept_request_id, request_id_var
from apps.core.http.responses import error_response

GetResponse = Callable[[HttpRequest], HttpResponseBase]
_REQUEST_ID_META = "HTTP_" + REQUEST_ID_HEADER.upper().replace("-", "_")


class RequestIdMiddleware:
    """Give every request an id (``X-Request-ID``), echoed back and put in its logs."""

    def __init__(self, get_response: GetResponse) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponseBase:
        # META, not request.headers: building the headers mapping costs more than the id.
        raw = request.META.get(_REQUEST_ID_META)
        request_id = accept_request_id(raw) if raw else _new_request_id()
        token = request_id_var.set(request_id)
        try:
            response = self.get_response(request)
        finally:
            request_id_var.reset(token)
        response[REQUEST_ID_HEADER] = request_id
        return response


# This process's generator of request ids, seeded from the OS (again in a forked child).
_ids: ProcessLocal[random.Random] = ProcessLocal(random.Random)


def _new_request_id() -> str:
    """Return a fresh id: 32 hex digits, like ``uuid4().hex`` at a tenth of its cost.

    A request id must be unique, not secret (clients may choose their own), so a
    generator seeded from the OS once per process replaces a system call and a UUID
    object per request.
    """
    return f"{_ids.get().getrandbits(128):032x}"


class BodySizeLimitMiddleware:
    """Answer 413 to a request whose declared body exceeds the limit, before reading it.

    Django's own DATA_UPLOAD_MAX_MEMORY_SIZE only guards ``request.body``; DRF's parsers
    read the stream directly, so the limit is enforced here on Content-Length.
    """

    def __init__(self, get_response: GetResponse) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponseBase:
        raw = request.META.get("CONTENT_LENGTH") or "0"
        try:
            length = int(raw)
        except ValueError:
            return error_response(400, "Content-Length is not a number.")
        if length < 0:
            return error_response(400, "Content-Length is negative.")
        limit: int = settings.REQUEST_BODY_MAX_BYTES
        if length > limit:
            return error_response(413, f"Request body is larger than {limit} bytes.")
        return self.get_response(request)
