"""The cached public profile: its key, its versioned document, its accessor, its flushes.

Under the logical key ``user:{id}`` the cache holds ``{"version": …, "profile": …}``.
The version names the profile's shape, so a document stored by code of another shape
is never served (nor its ETag matched): the accessor drops it and reads again. There
is one copy per user whatever its version, so an invalidation of ``user:{id}`` (on the
channel, ``{"type": "user", "id": …}``) drops it.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from functools import lru_cache
from typing import Any

from django.conf import settings

from apps.core.cache import (
    CachedValue,
    TieredCache,
    invalidate_on_commit,
    make_etag,
    tiered_cache,
)
from apps.core.http.errors import NotFound
from apps.users.models import User, UserQuerySet
from apps.users.selectors import user_public_profile
from apps.users.serializers import PublicProfileOutput

USER_CACHE_KIND = UserQuerySet.cache_kind


@dataclass(frozen=True)
class PublicProfile:
    """A public profile document as served, and its entity tag."""

    data: dict[str, Any]
    etag: str


def user_cache_key(user_id: int) -> str:
    """Return the logical cache key of a user's public profile."""
    return f"{USER_CACHE_KIND}:{user_id}"


def profile_schema_version() -> str:
    """Return the version of the public profile's shape: its fields, names and kinds."""
    return _schema_version(User.PUBLIC_PROFILE_FIELDS)


@lru_cache(maxsize=8)
def _schema_version(fields: tuple[str, ...]) -> str:
    # Keyed by the declaration, so the per-request cost is one dictionary lookup.
    shape = ",".join(
        f"{name}:{type(field).__name__}" for name, field in PublicProfileOutput().fields.items()
    )
    return hashlib.sha256(shape.encode()).hexdigest()[:12]


def user_profile_cache_document(profile: dict[str, Any]) -> dict[str, Any]:
    """Return what the cache stores for ``profile``: it, under its shape's version."""
    return {"version": profile_schema_version(), "profile": profile}


def user_profile_get_cached(*, user_id: int) -> PublicProfile:
    """Return the public profile of an active user through L1 and Redis, or raise NotFound.

    A miss reads the primary (``CACHE_FILL_DATABASE``): a replica behind the last
    invalidation would otherwise put the old row back in the cache.
    """
    cache, key, version = tiered_cache(), user_cache_key(user_id), profile_schema_version()
    value = _read(cache, key, user_id)
    if value is not None and _version(value.data) != version:
        # Stored by code of another shape: drop it everywhere, then fill it anew.
        cache.invalidate(USER_CACHE_KIND, [user_id])
        value = _read(cache, key, user_id)
    if value is None:
        raise NotFound("User not found.")
    data: dict[str, Any] = value.data
    if _version(data) != version:
        # Refilled meanwhile by code of the other shape (a deploy under way): serve
        # this request from the database, leaving the cache to them.
        fresh = _load(user_id)
        if fresh is None:
            raise NotFound("User not found.")
        return PublicProfile(fresh["profile"], make_etag(fresh))
    return PublicProfile(data["profile"], value.etag)


def _version(document: Any) -> Any:
    return document.get("version") if isinstance(document, dict) else None


def _read(cache: TieredCache, key: str, user_id: int) -> CachedValue | None:
    return cache.get(key, lambda: _load(user_id), ttl=settings.USER_PROFILE_CACHE_TTL_SECONDS)


def _load(user_id: int) -> dict[str, Any] | None:
    profile = user_public_profile(user_id=user_id, using=settings.CACHE_FILL_DATABASE)
    return None if profile is None else user_profile_cache_document(profile)


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
    if update_fields is not None and not set(update_fields) & sender.public_profile_depends_on():
        return
    user_cache_invalidate(user_ids=[instance.pk], using=using)


def on_user_deleted(sender: type[User], instance: User, using: str, **kwargs: Any) -> None:
    """Flush the deleted user's profile on commit."""
    user_cache_invalidate(user_ids=[instance.pk], using=using)
