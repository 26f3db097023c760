"""Helpers the API views of every app share."""

from __future__ import annotations

from typing import Any

from rest_framework import exceptions, serializers
from rest_framework.request import Request


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
