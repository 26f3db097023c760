"""Per-user rate-limit overrides, edited in the admin."""

from __future__ import annotations

from django.conf import settings
from django.core.exceptions import ValidationError
from django.core.validators import MinValueValidator
from django.db import models


class RateLimitOverride(models.Model):
    """A rate that replaces a policy's for one user, e.g. a partner with a higher quota."""

    user = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="ratelimit_overrides"
    )
    policy = models.CharField(max_length=50, help_text="Name of a policy in RATELIMIT_POLICIES.")
    limit = models.PositiveIntegerField(validators=[MinValueValidator(1)])
    window = models.PositiveIntegerField(
        validators=[MinValueValidator(1)], help_text="Window in seconds."
    )
    note = models.CharField(max_length=200, blank=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["user", "policy"], name="ratelimit_override_unique"),
            models.CheckConstraint(
                condition=models.Q(limit__gte=1, window__gte=1),
                name="ratelimit_override_positive",
            ),
        ]

    def __str__(self) -> str:
        return f"{self.policy}: {self.limit}/{self.window}s for user {self.user_id}"

    def clean(self) -> None:
        """Refuse a policy name that is not declared in the settings."""
        if self.policy not in settings.RATELIMIT_POLICIES:
            known = ", ".join(sorted(settings.RATELIMIT_POLICIES))
            raise ValidationError({"policy": f"Unknown policy; known: {known}."})
