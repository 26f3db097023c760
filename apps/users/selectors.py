"""Reads of users."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from django.db.models import F

from apps.core.http.errors import NotFound
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


def user_public_profile(*, user_id: int, using: str | None = None) -> dict[str, Any] | None:
    """Return the public profile of an active user as a JSON document, or None.

    ``using`` pins the database (cache fills read the primary); by default the router
    decides.
    """
    users = User.objects.using(using) if using else User.objects.all()
    row = (
        users.filter(pk=user_id, is_active=True)
        .values("id", "username", "display_name", "date_joined")
        .first()
    )
    if row is None:
        return None
    return {**row, "date_joined": _iso(row["date_joined"])}


def _iso(value: datetime) -> str:
    """Render a datetime as the API does: ISO 8601 in UTC, ``Z`` for the offset."""
    text = value.astimezone(UTC).isoformat()
    return text[:-6] + "Z" if text.endswith("+00:00") else text


def user_public_profiles_recent(
    *, offset: int, limit: int, using: str | None = None
) -> list[dict[str, Any]]:
    """Return public profiles of active users, most recently active first (one query)."""
    users = User.objects.using(using) if using else User.objects.all()
    rows = (
        users.filter(is_active=True)
        .order_by(F("last_active").desc(nulls_last=True), "-pk")
        .values("id", "username", "display_name", "date_joined")[offset : offset + limit]
    )
    return [{**row, "date_joined": _iso(row["date_joined"])} for row in rows]
