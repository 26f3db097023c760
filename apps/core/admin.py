"""The core app's admin: the event plumbing's (dead letters, outbox) lives in ``events.admin``."""

from apps.core.events import admin as events_admin

__all__ = ["events_admin"]
