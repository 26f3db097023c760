"""Helpers the API views of every app share."""

from __future__ import annotations

import threading
from collections import OrderedDict
from collections.abc import Mapping
from typing import Any

from django.http import HttpResponse
from drf_spectacular.utils import OpenApiParameter, OpenApiResponse, inline_serializer
from rest_framework import exceptions, serializers
from rest_framework.renderers import JSONRenderer
from rest_framework.request import Request
from rest_framework.response import Response

ERROR_DESCRIPTIONS = {
    400: "Invalid input; `errors` names each offending field.",
    401: "Authentication credentials are missing or invalid.",
    404: "Not found, or not the caller's to see; on a list, an invalid cursor.",
    409: "A request with this Idempotency-Key is still being processed.",
    422: "This Idempotency-Key was already used with a different request body.",
}


# The one error shape of the API. Inline, because a serializer class cannot declare a
# field named ``errors`` without shadowing ``Serializer.errors`` for the type checker.
ERROR_OUTPUT = inline_serializer(
    name="ErrorOutput",
    fields={
        "detail": serializers.CharField(),
        "errors": serializers.DictField(required=False, help_text="Messages per field."),
    },
)


# Row ids are PostgreSQL ``bigint``s.
MAX_ID = 2**63 - 1


def error_responses(
    *codes: int, descriptions: Mapping[int, str] | None = None
) -> dict[int, OpenApiResponse]:
    """Return schema entries documenting these error statuses in the error shape.

    ``descriptions`` replaces the usual text of a status where it means something else.
    """
    texts = {**ERROR_DESCRIPTIONS, **(descriptions or {})}
    return {code: OpenApiResponse(ERROR_OUTPUT, description=texts[code]) for code in codes}


def id_path_parameter(name: str) -> OpenApiParameter:
    """Return the schema of a path segment holding a row id, which is always positive."""
    return OpenApiParameter(name, {"type": "integer", "minimum": 1}, OpenApiParameter.PATH)


def validated(serializer_class: type[serializers.Serializer[Any]], data: Any) -> dict[str, Any]:
    """Validate ``data`` with the serializer, raising its 400, and return the clean dict."""
    serializer = serializer_class(data=data)
    serializer.is_valid(raise_exception=True)
    return dict(serializer.validated_data)


def request_user_id(request: Request) -> int:
    """Return the id of the authenticated user, or raise the API's 401."""
    user_id = request.user.pk if request.user.is_authenticated else None
    if not isinstance(user_id, int):
        raise exceptions.NotAuthenticated()
    return user_id


class RenderedByEtag:
    """The rendered JSON bytes of documents, by their strong entity tag (bounded LRU).

    A strong ETag names one document, so its bytes never change: a cache hit can be
    answered without DRF rendering the same document again on every request.
    """

    def __init__(self, max_entries: int = 4096) -> None:
        self.max_entries = max_entries
        self._bodies: OrderedDict[str, bytes] = OrderedDict()
        self._lock = threading.Lock()

    def response(
        self, request: Request, etag: str, data: Any, headers: Mapping[str, str]
    ) -> HttpResponse | Response:
        """Return a 200 with ``data`` as the view's negotiated JSON would render it.

        Only the plain JSON rendering (no ``indent`` or other parameters) is kept; any
        other negotiated rendering gets an ordinary DRF ``Response``.
        """
        renderer = getattr(request, "accepted_renderer", None)
        if type(renderer) is not JSONRenderer or request.accepted_media_type != renderer.media_type:
            return Response(data, headers=headers)
        body = self.body(etag, data)
        return HttpResponse(body, content_type=renderer.media_type, headers=headers)

    def body(self, etag: str, data: Any) -> bytes:
        """Return ``data`` rendered by DRF's plain JSON renderer, rendered once per ``etag``."""
        with self._lock:
            body = self._bodies.get(etag)
            if body is not None:
                self._bodies.move_to_end(etag)
                return body
        body = _JSON_RENDERER.render(data, _JSON_RENDERER.media_type, {})
        with self._lock:
            self._bodies[etag] = body
            while len(self._bodies) > self.max_entries:
                self._bodies.popitem(last=False)
        return body


_JSON_RENDERER = JSONRenderer()
