"""Users and their API tokens."""

from __future__ import annotations

from datetime import datetime
from typing import Any, ClassVar

from django.conf import settings
from django.contrib.auth.models import AbstractUser
from django.contrib.auth.models import UserManager as DjangoUserManager
from django.db import models, router, transaction
from django.db.models import Q
from django.db.models.functions import Lower
from django.utils import timezone
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
    """An account: Django's user plus a public display name and last activity.

    Saving a new password revokes every API token of the user, in the same transaction,
    whatever set it (the admin's forms, ``changepassword``, a shell, a service): each of
    them goes through ``set_password()`` or ``set_unusable_password()`` and ``save()``.
    Django's re-hashing of an unchanged password on login (a hasher upgrade) is not a
    change. A queryset ``update(password=…)`` bypasses the model and revokes nothing.
    """

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

    # Set by a new password until it is saved; True while check_password() may re-hash.
    _password_pending_save = False
    _rehashing = False

    def __str__(self) -> str:
        return self.username

    def set_password(self, raw_password: str | None) -> None:
        """Set a new password; saving it revokes the user's API tokens."""
        super().set_password(raw_password)
        if not self._rehashing:
            self._password_pending_save = True

    def set_unusable_password(self) -> None:
        """Lock the password; saving it revokes the user's API tokens."""
        super().set_unusable_password()
        self._password_pending_save = True

    def check_password(self, raw_password: str | None) -> bool:
        """Check ``raw_password``; a re-hash Django saves meanwhile is no password change."""
        self._rehashing = True
        try:
            return super().check_password(raw_password)
        finally:
            self._rehashing = False

    def save(self, *args: Any, **kwargs: Any) -> None:
        """Save the user; a new password revokes its tokens in the same transaction."""
        update_fields = kwargs.get("update_fields")
        saves_password = update_fields is None or "password" in update_fields
        if not (self._password_pending_save and saves_password) or self.pk is None:
            super().save(*args, **kwargs)
            if saves_password:
                self._password_pending_save = False
            return
        using = kwargs.get("using") or router.db_for_write(type(self), instance=self)
        with transaction.atomic(using=using):
            super().save(*args, **kwargs)
            AuthToken.objects.using(using).filter(user_id=self.pk).delete()
        self._password_pending_save = False

    @classmethod
    def public_profile_depends_on(cls) -> frozenset[str]:
        """Return the fields whose change flushes a cached public profile.

        The fields it shows, and ``is_active``: only an active user has a public profile.
        """
        return frozenset({*cls.PUBLIC_PROFILE_FIELDS, "is_active"})


class AuthToken(models.Model):
    """An API token; only its SHA-256 digest is stored, never the token itself.

    A token is valid until ``expires_at``; revoking it deletes the row.
    """

    user = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="auth_tokens"
    )
    digest = models.CharField(max_length=64, unique=True)
    created_at = models.DateTimeField(auto_now_add=True)
    expires_at = models.DateTimeField()
    # Written at most once per AUTH_TOKEN_LAST_USED_INTERVAL_SECONDS.
    last_used_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        indexes = [models.Index(fields=["user", "created_at"], name="users_token_user_created")]

    def __str__(self) -> str:
        return f"token {self.digest_prefix}… of {self.user_id}"

    @property
    def digest_prefix(self) -> str:
        """Return the first characters of the digest: enough to tell tokens apart."""
        return self.digest[:8]

    def is_expired(self, now: datetime | None = None) -> bool:
        """Return whether the token has passed its expiry."""
        return self.expires_at <= (now or timezone.now())
