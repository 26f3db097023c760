"""The public profile's serializer: the one shape that is documented, cached and served."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from rest_framework import serializers

from apps.users.models import User


class PublicProfileOutput(serializers.ModelSerializer[User]):
    """A user's public profile: the fields of ``User.PUBLIC_PROFILE_FIELDS``, read-only.

    The field list is read when the serializer is built, not when the class is, so the
    schema and the documents follow the model's declaration.
    """

    class Meta:
        model = User

    def get_field_names(self, declared_fields: Any, info: Any) -> list[str]:
        """Return the declared public profile fields."""
        return list(User.PUBLIC_PROFILE_FIELDS)

    def get_extra_kwargs(self) -> dict[str, Any]:
        """Make every field read-only: this serializer only ever renders."""
        return {name: {"read_only": True} for name in User.PUBLIC_PROFILE_FIELDS}


def public_profile_document(user: User) -> dict[str, Any]:
    """Return ``user``'s public profile as the API renders it (ISO dates, in order)."""
    return dict(PublicProfileOutput(user).data)


def public_profile_documents(users: Iterable[User]) -> list[dict[str, Any]]:
    """Return the public profiles of ``users``, in order, with one serializer for all.

    A ``ModelSerializer`` builds its fields from the model each time one is made; a
    list serializer makes them once for every user of a batch (``warm_cache``).
    """
    return [dict(row) for row in PublicProfileOutput(list(users), many=True).data]
