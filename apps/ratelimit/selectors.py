"""Reads of per-user overrides, through a short per-process snapshot."""

from __future__ import annotations

import threading
import time

from django.conf import settings

from apps.ratelimit.models import RateLimitOverride

_lock = threading.Lock()
_snapshot: dict[tuple[int, str], tuple[int, int]] = {}
_loaded_at = float("-inf")


def override_get(*, user_id: int, policy: str) -> tuple[int, int] | None:
    """Return ``(limit, window)`` overriding ``policy`` for the user, or None.

    The whole override table (a handful of partner rows) is read at most once per
    ``RATELIMIT_OVERRIDE_CACHE_SECONDS`` per process, so an edit in the admin takes
    effect everywhere within that many seconds, and a request costs no query.
    """
    global _snapshot, _loaded_at
    max_age: int = settings.RATELIMIT_OVERRIDE_CACHE_SECONDS
    if time.monotonic() - _loaded_at >= max_age:
        with _lock:
            if time.monotonic() - _loaded_at >= max_age:
                rows = RateLimitOverride.objects.values_list("user_id", "policy", "limit", "window")
                _snapshot = {(uid, name): (limit, window) for uid, name, limit, window in rows}
                _loaded_at = time.monotonic()
    return _snapshot.get((user_id, policy))


def override_snapshot_clear() -> None:
    """Forget this process's snapshot, so the next lookup reads the table again."""
    global _loaded_at
    _loaded_at = float("-inf")
