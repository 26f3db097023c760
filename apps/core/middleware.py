"""Middleware shared by every app: request ids and the request body limit."""

from __future__ import annotations

from collections.abc import Callable

from django.conf import settings
from django.http import HttpRequest, HttpResponseBase

from apps.core.request_context import REQUEST_ID_HEADER, accept_request_id, request_id_var
from apps.core.responses import error_response

GetResponse = Callable[[HttpRequest], HttpResponseBase]


class RequestIdMiddleware:
    """Give every request an id (``X-Request-ID``), echoed back and put in its logs."""

    def __init__(self, get_response: GetResponse) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponseBase:
        request_id = accept_request_id(request.headers.get(REQUEST_ID_HEADER))
        token = request_id_var.set(request_id)
        try:
            response = self.get_response(request)
        finally:
            request_id_var.reset(token)
        response[REQUEST_ID_HEADER] = request_id
        return response


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
