"""Users and their API tokens."""

from __future__ import annotations

from typing import ClassVar

from django.conf import settings
from django.contrib.auth.models import AbstractUser
from django.contrib.auth.models import UserManager as DjangoUserManager
from django.db import models
from django.db.models import Q
from django.db.models.functions import Lower
from django_prometheus.models import ExportModelOperationsMixin

from apps.core.cache.queryset import InvalidatingQuerySet


class UserQuerySet(InvalidatingQuerySet["User"]):
    """Users; bulk writes to what a public profile shows invalidate its cached copy."""

    cache_kind = "user"

    # A property over the base's class attribute (hence the ignore: mypy refuses a
    # read-only property there), so that it is read per write and follows the model.
    @property
    def cached_fields(self) -> frozenset[str]:  # type: ignore[override]
        """Return the fields whose change flushes a cached public profile."""
        return self.model.public_profile_depends_on()


class UserManager(DjangoUserManager["User"]):
    """Django's user manager over ``UserQuerySet``."""

    def get_queryset(self) -> UserQuerySet:
        """Return every user, through the invalidating QuerySet."""
        return UserQuerySet(self.model, using=self._db)


class User(ExportModelOperationsMixin("user"), AbstractUser):  # type: ignore[misc]  # untyped mixin factory
    """An account: Django's user plus a public display name and last activity."""

    display_name = models.CharField(max_length=150, blank=True)
    last_active = models.DateTimeField(null=True, blank=True, db_index=True)

    objects: ClassVar[UserManager] = UserManager()

    # What a public profile shows, in order. Its API schema, its cached document (and
    # the cache's schema version) and which writes flush it are all read from here.
    PUBLIC_PROFILE_FIELDS: ClassVar[tuple[str, ...]] = (
        "id",
        "username",
        "display_name",
        "date_joined",
    )

    class Meta(AbstractUser.Meta):
        swappable = "AUTH_USER_MODEL"
        constraints = [
            models.UniqueConstraint(
                Lower("email"),
                condition=~Q(email=""),
                name="users_user_email_ci_unique",
            ),
        ]

    def __str__(self) -> str:
        return self.username

    @classmethod
    def public_profile_depends_on(cls) -> frozenset[str]:
        """Return the fields whose change flushes a cached public profile.

        The fields it shows, and ``is_active``: only an active user has a public profile.
        """
        return frozenset({*cls.PUBLIC_PROFILE_FIELDS, "is_active"})


class AuthToken(models.Model):
    """An API token; only its SHA-256 digest is stored, never the token itself."""

    user = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="auth_tokens"
    )
    digest = models.CharField(max_length=64, unique=True)
    created_at = models.DateTimeField(auto_now_add=True)

    def __str__(self) -> str:
        return f"token {self.digest[:8]}… of {self.user_id}"
