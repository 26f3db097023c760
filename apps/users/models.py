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
    cached_fields = frozenset({"id", "username", "display_name", "date_joined", "is_active"})


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


class AuthToken(models.Model):
    """An API token; only its SHA-256 digest is stored, never the token itself."""

    user = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="auth_tokens"
    )
    digest = models.CharField(max_length=64, unique=True)
    created_at = models.DateTimeField(auto_now_add=True)

    def __str__(self) -> str:
        return f"token {self.digest[:8]}… of {self.user_id}"
