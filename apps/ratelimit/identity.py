"""Who a request counts as: client address (through trusted proxies only) and scope keys."""

from __future__ import annotations

import hashlib
import ipaddress
from collections.abc import Callable, Sequence
from functools import lru_cache
from typing import Any

from django.conf import settings
from django.http import HttpRequest
from django.utils.module_loading import import_string
from rest_framework.request import Request

from apps.core.http.proxies import is_trusted as _is_trusted
from apps.core.http.proxies import networks as _networks

USERNAME_MAX_LENGTH = 150


def client_ip(request: HttpRequest | Request) -> str:
    """Return the client's address.

    ``X-Forwarded-For`` is read only when the socket peer is a trusted proxy, and then
    from the right: each trusted hop is skipped and the first address that is not a
    trusted proxy is the client. A client can prepend anything to the header, but it
    cannot forge the hops that trusted proxies appended after it.
    """
    meta = request.META
    remote = str(meta.get("REMOTE_ADDR") or "")
    entries: Sequence[str] = settings.RATELIMIT_TRUSTED_PROXIES
    if not entries:
        return remote
    forwarded = str(meta.get("HTTP_X_FORWARDED_FOR") or "")
    return _client_ip(remote, forwarded, tuple(entries))


@lru_cache(maxsize=4096)
def _client_ip(remote: str, forwarded: str, trusted: tuple[str, ...]) -> str:
    """Return the client address for this peer, header and trusted proxies.

    A pure function, so memoized: parsing addresses costs more than the rest of a
    limit check, and a client sends the same values request after request.
    """
    networks = _networks(trusted)
    if not _is_trusted(remote, networks):
        return remote
    for hop in reversed([part.strip() for part in forwarded.split(",") if part.strip()]):
        try:
            address = str(ipaddress.ip_address(hop))
        except ValueError:
            # Garbage in the chain: trust nothing to the left of it.
            return remote
        if not _is_trusted(address, networks):
            return address
        remote = address
    return remote


def login_username(request: HttpRequest | Request) -> str:
    """Return the username a login request names: trimmed, case-folded, bounded.

    Case-folded so that ``Admin`` and ``admin`` count against one limit.
    """
    data: Any = getattr(request, "data", None)
    if data is None:
        data = request.POST
    value = data.get("username") if hasattr(data, "get") else None
    text = value if isinstance(value, str) else ""
    return text.strip().casefold()[:USERNAME_MAX_LENGTH]


def _user_id(request: HttpRequest | Request) -> int | None:
    if not isinstance(request, Request) and settings.SESSION_COOKIE_NAME not in request.COOKIES:
        # A plain Django request is authenticated by its session alone: without the
        # cookie it is anonymous. Asking its user would read the session and mark the
        # response `Vary: Cookie`. (A DRF request has authenticated before its throttles.)
        return None
    user = getattr(request, "user", None)
    if user is not None and user.is_authenticated and isinstance(user.pk, int):
        return user.pk
    return None


def _token(request: HttpRequest | Request) -> str | None:
    header = str(request.META.get("HTTP_AUTHORIZATION") or "")
    scheme, _, credentials = header.partition(" ")
    if scheme.lower() != "token" or not credentials.strip():
        return None
    return hashlib.sha256(credentials.strip().encode()).hexdigest()[:32]


def scope_key(scope: str, request: HttpRequest | Request) -> tuple[str, int | None]:
    """Return the counter key of ``request`` under ``scope``, and its user id if any.

    The user id is what per-user overrides are looked up by.
    """
    user_id = _user_id(request)
    if scope == "user_or_ip":
        return (f"user:{user_id}" if user_id is not None else f"ip:{client_ip(request)}"), user_id
    if scope == "ip":
        return f"ip:{client_ip(request)}", user_id
    if scope == "ip_username":
        return f"ip:{client_ip(request)}:username:{login_username(request)}", user_id
    if scope == "token":
        token = _token(request)
        return (f"token:{token}" if token else f"ip:{client_ip(request)}"), user_id
    key_function: Callable[[HttpRequest | Request], str] = import_string(scope)
    return f"custom:{key_function(request)}", user_id
