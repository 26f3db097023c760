"""Middleware shared by every app: request ids, the request body limit, lazy messages."""

from __future__ import annotations

import os
import random
from collections.abc import Callable

from django.conf import settings
from django.contrib.messages.middleware import MessageMiddleware
from django.contrib.messages.storage import default_storage
from django.http import HttpRequest, HttpResponse, HttpResponseBase
from django.utils.functional import SimpleLazyObject, empty

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


# A generator of this process's request ids (and the process it belongs to).
_ids: tuple[random.Random, int] | None = None


def _new_request_id() -> str:
    """Return a fresh id: 32 hex digits, like ``uuid4().hex`` at a tenth of its cost.

    A request id must be unique, not secret (clients may choose their own), so a
    generator seeded from the OS once per process replaces a system call and a UUID
    object per request. A forked worker seeds its own.
    """
    global _ids
    if _ids is None or _ids[1] != os.getpid():
        _ids = (random.Random(), os.getpid())  # noqa: S311 -- unique, not secret
    return f"{_ids[0].getrandbits(128):032x}"


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


class LazyMessageMiddleware(MessageMiddleware):
    """Django's ``MessageMiddleware``, building the message storage only when used.

    The storage (cookie and session backends, a cookie signer) costs more than a whole
    API view's own work, and only the admin ever adds or reads a message; a request
    that never touched it has nothing to save, so it is left out of the response too.
    """

    def process_request(self, request: HttpRequest) -> None:
        request._messages = SimpleLazyObject(lambda: default_storage(request))  # type: ignore[attr-defined]

    def process_response(self, request: HttpRequest, response: HttpResponse) -> HttpResponse:
        messages = request.__dict__.get("_messages")
        if isinstance(messages, SimpleLazyObject) and messages._wrapped is empty:
            return response
        return super().process_response(request, response)
