"""Which rate-limit policies a request's view will check, known before the view runs.

``EarlyCheckMiddleware`` sends those checks as the request arrives. A view declares its
policies by what it already is: the ``ratelimit`` decorator marks the function it
returns, and a DRF view lists ``PolicyThrottle`` classes in ``throttle_classes``. A view
that chooses its throttles per request (its own ``get_throttles``) declares nothing
here and is checked when it asks, as before.
"""

from __future__ import annotations

from collections.abc import Callable
from functools import lru_cache
from typing import Any

from django.core.signals import setting_changed
from django.dispatch import receiver
from django.urls import Resolver404, resolve
from rest_framework.views import APIView

from apps.ratelimit.throttles import PolicyThrottle

# Attribute the ``ratelimit`` decorator sets on the view it returns: the policy names.
VIEW_POLICIES_ATTRIBUTE = "ratelimit_policies"
# Longer paths are resolved every time rather than kept: the memo stays a few hundred KB.
MEMO_PATH_MAX_LENGTH = 128


def policies_for_path(urlconf: str | None, path: str) -> tuple[str, ...]:
    """Return the policies the view ``path`` resolves to checks (none for a 404).

    Memoized by path: resolving costs more than the check's own work, and a client
    asks for the same paths again and again. The URLconf is fixed while a process runs
    (tests that swap it clear this through ``setting_changed``).
    """
    if len(path) > MEMO_PATH_MAX_LENGTH:
        return _resolve_policies(urlconf, path)
    return _memoized_policies(urlconf, path)


def _resolve_policies(urlconf: str | None, path: str) -> tuple[str, ...]:
    try:
        match = resolve(path, urlconf)
    except Resolver404:
        return ()
    return view_policies(match.func)


_memoized_policies = lru_cache(maxsize=4096)(_resolve_policies)


def view_policies(view: Callable[..., Any]) -> tuple[str, ...]:
    """Return the policies ``view`` declares, in the order it checks them."""
    declared: tuple[str, ...] | None = getattr(view, VIEW_POLICIES_ATTRIBUTE, None)
    if declared is not None:
        return declared
    cls = getattr(view, "cls", None)
    if not (isinstance(cls, type) and issubclass(cls, APIView)):
        return ()
    if cls.get_throttles is not APIView.get_throttles:
        return ()
    initkwargs: dict[str, Any] = getattr(view, "initkwargs", {})
    classes = initkwargs.get("throttle_classes", cls.throttle_classes)
    return tuple(
        throttle.policy_name
        for throttle in classes
        if isinstance(throttle, type) and issubclass(throttle, PolicyThrottle)
    )


@receiver(setting_changed)
def forget_routes(*, setting: str = "", **kwargs: Any) -> None:
    """Forget the memoized routes when the URLconf or the throttle defaults change."""
    if setting in ("ROOT_URLCONF", "REST_FRAMEWORK"):
        _memoized_policies.cache_clear()
