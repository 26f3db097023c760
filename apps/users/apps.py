"""The users app; its signals only flush the cached profile, connected once when ready."""

from django.apps import AppConfig
from django.db.models.signals import post_delete, post_save


class UsersConfig(AppConfig):
    name = "apps.users"
    label = "users"
    verbose_name = "Users"

    def ready(self) -> None:
        # Signals only flush caches, on commit; see apps/users/cache.py.
        from apps.users.cache import on_user_deleted, on_user_saved
        from apps.users.models import User

        post_save.connect(on_user_saved, sender=User, dispatch_uid="users.cache.user_saved")
        post_delete.connect(on_user_deleted, sender=User, dispatch_uid="users.cache.user_deleted")
