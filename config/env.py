"""Parse the environment variables the settings module is driven by."""

from __future__ import annotations

import os
import re

from django.core.exceptions import ImproperlyConfigured

_TRUE = {"1", "true", "yes", "on"}
_FALSE = {"0", "false", "no", "off", ""}

RATELIMIT_POLICIES = ("api", "login")
_OVERRIDE_RE = re.compile(r"^(?P<name>[a-z_]+)=(?P<limit>[0-9]+)/(?P<window>[0-9]+)$")


def env_str(name: str, default: str = "") -> str:
    """Return the variable, or the default when it is unset or empty."""
    return os.environ.get(name, "").strip() or default


def env_bool(name: str, *, default: bool) -> bool:
    """Return the variable as a boolean; refuse values that are not clearly one."""
    raw = os.environ.get(name)
    if raw is None:
        return default
    value = raw.strip().lower()
    if value in _TRUE:
        return True
    if value in _FALSE:
        return False
    raise ImproperlyConfigured(f"{name}={raw!r} is not a boolean (use true or false).")


def env_int(name: str, default: int, *, minimum: int = 0) -> int:
    """Return the variable as an integer no smaller than ``minimum``."""
    raw = os.environ.get(name, "").strip()
    if not raw:
        return default
    try:
        value = int(raw)
    except ValueError:
        raise ImproperlyConfigured(f"{name}={raw!r} is not an integer.") from None
    if value < minimum:
        raise ImproperlyConfigured(f"{name}={raw!r} must be at least {minimum}.")
    return value


def env_list(name: str, default: list[str] | None = None) -> list[str]:
    """Return the comma-separated variable as a list without blanks."""
    raw = os.environ.get(name, "")
    items = [item.strip() for item in raw.split(",") if item.strip()]
    return items or list(default or [])


def parse_ratelimit_overrides(raw: str) -> dict[str, tuple[int, int]]:
    """Parse ``api=100/60,login=5/60`` into ``{"api": (100, 60), ...}``.

    Raise ImproperlyConfigured naming the bad part, so a typo stops the process at
    start instead of silently leaving a policy at its default.
    """
    overrides: dict[str, tuple[int, int]] = {}
    for part in (p.strip() for p in raw.split(",")):
        if not part:
            continue
        match = _OVERRIDE_RE.match(part)
        if match is None:
            raise ImproperlyConfigured(
                f"RATELIMIT_OVERRIDES: {part!r} is not of the form policy=LIMIT/SECONDS "
                "(e.g. api=100/60)."
            )
        name = match["name"]
        if name not in RATELIMIT_POLICIES:
            known = ", ".join(RATELIMIT_POLICIES)
            raise ImproperlyConfigured(
                f"RATELIMIT_OVERRIDES: unknown policy {name!r} (known: {known})."
            )
        limit, window = int(match["limit"]), int(match["window"])
        if limit < 1 or window < 1:
            raise ImproperlyConfigured(
                f"RATELIMIT_OVERRIDES: {part!r} needs a limit and a window of at least 1."
            )
        overrides[name] = (limit, window)
    return overrides
