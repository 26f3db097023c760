"""Reads of users: public profiles, one by id or the most recently active first."""

from __future__ import annotations

from typing import Any

from django.db.models import F, QuerySet

from apps.users.models import User
from apps.users.serializers import public_profile_document, public_profile_documents


def user_public_profile(*, user_id: int, using: str | None = None) -> dict[str, Any] | None:
    """Return the public profile of an active user as its JSON document, or None.

    ``using`` pins the database (cache fills read the primary); by default the router
    decides.
    """
    user = _public(using).filter(pk=user_id).first()
    return None if user is None else public_profile_document(user)


def user_public_profiles_recent(
    *, offset: int, limit: int, using: str | None = None
) -> list[dict[str, Any]]:
    """Return public profiles of active users, most recently active first (one query)."""
    users = _public(using).order_by(F("last_active").desc(nulls_last=True), "-pk")
    return public_profile_documents(users[offset : offset + limit])


def _public(using: str | None) -> QuerySet[User]:
    users = User.objects.using(using) if using else User.objects.all()
    return users.filter(is_active=True).only(*User.PUBLIC_PROFILE_FIELDS)
