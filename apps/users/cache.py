"""The cached public profile: its key, its read-through accessor, its flush receivers."""

from __future__ import annotations

from typing import Any

from django.conf import settings

from apps.core.cache import CachedValue, invalidate_on_commit, tiered_cache
from apps.core.http.errors import NotFound
from apps.users.models import User, UserQuerySet
from apps.users.selectors import user_public_profile

USER_CACHE_KIND = "user"


def user_cache_key(user_id: int) -> str:
    """Return the logical cache key of a user's public profile."""
    return f"{USER_CACHE_KIND}:{user_id}"


def user_profile_get_cached(*, user_id: int) -> CachedValue:
    """Return the public profile of an active user through L1 and Redis, or raise NotFound.

    A miss reads the primary (``CACHE_FILL_DATABASE``): a replica behind the last
    invalidation would otherwise put the old row back in the cache.
    """
    value = tiered_cache().get(
        user_cache_key(user_id),
        lambda: user_public_profile(user_id=user_id, using=settings.CACHE_FILL_DATABASE),
        ttl=settings.USER_PROFILE_CACHE_TTL_SECONDS,
    )
    if value is None:
        raise NotFound("User not found.")
    return value


def user_cache_invalidate(*, user_ids: list[int], using: str = "default") -> None:
    """Drop the cached profiles of ``user_ids`` once the current transaction commits."""
    invalidate_on_commit(USER_CACHE_KIND, user_ids, using=using)


def on_user_saved(
    sender: type[User],
    instance: User,
    using: str,
    created: bool = False,
    update_fields: frozenset[str] | None = None,
    **kwargs: Any,
) -> None:
    """Flush the saved user's profile on commit, unless only unshown fields changed.

    A new row needs no flush: only profiles that exist are ever cached.
    """
    if created:
        return
    if update_fields is not None and not set(update_fields) & UserQuerySet.cached_fields:
        return
    user_cache_invalidate(user_ids=[instance.pk], using=using)


def on_user_deleted(sender: type[User], instance: User, using: str, **kwargs: Any) -> None:
    """Flush the deleted user's profile on commit."""
    user_cache_invalidate(user_ids=[instance.pk], using=using)
