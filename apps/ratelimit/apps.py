from django.apps import AppConfig
from django.core.signals import setting_changed
from django.db.models.signals import post_delete, post_save


def _flush_override_snapshot(**kwargs: object) -> None:
    from apps.ratelimit.selectors import override_snapshot_clear

    override_snapshot_clear()


class RatelimitConfig(AppConfig):
    name = "apps.ratelimit"
    label = "ratelimit"
    verbose_name = "Rate limiting"

    def ready(self) -> None:
        from apps.ratelimit.models import RateLimitOverride
        from apps.ratelimit.policies import forget_resolved_policies, validate_policies

        validate_policies()
        setting_changed.connect(forget_resolved_policies, dispatch_uid="ratelimit_policies")
        # Other processes pick an edit up within RATELIMIT_OVERRIDE_CACHE_SECONDS; the
        # process that saved it, at once.
        post_save.connect(
            _flush_override_snapshot, sender=RateLimitOverride, dispatch_uid="ratelimit_saved"
        )
        post_delete.connect(
            _flush_override_snapshot, sender=RateLimitOverride, dispatch_uid="ratelimit_deleted"
        )
