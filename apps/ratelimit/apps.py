from django.apps import AppConfig
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
        from apps.ratelimit.policies import validate_policies

        validate_policies()
        # Other processes pick an edit up within RATELIMIT_OVERRIDE_CACHE_SECONDS; the
        # process that saved it, at once.
        post_save.connect(
            _flush_override_snapshot, sender=RateLimitOverride, dispatch_uid="ratelimit_saved"
        )
        post_delete.connect(
            _flush_override_snapshot, sender=RateLimitOverride, dispatch_uid="ratelimit_deleted"
        )
