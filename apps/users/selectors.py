"""Reads of users."""

from __future__ import annotations

from apps.core.errors import NotFound
from apps.users.models import User


def user_get_public(*, user_id: int) -> User:
    """Return the active user with this id, or raise NotFound."""
    user = (
        User.objects.filter(pk=user_id, is_active=True)
        .only("id", "username", "display_name", "date_joined")
        .first()
    )
    if user is None:
        raise NotFound("User not found.")
    return user
