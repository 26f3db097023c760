"""Which peers are trusted proxies (``RATELIMIT_TRUSTED_PROXIES``), and what they may tell.

One list serves every forwarded header: ``X-Forwarded-For`` (the client's address, read
by the rate limiter) and ``X-Forwarded-Host``/``-Port``/``-Proto`` (the host, port and
scheme the client used, read by Django when it builds absolute URLs).
"""

from __future__ import annotations

import ipaddress
from collections.abc import Callable, Sequence
from functools import lru_cache

from django.conf import settings
from django.http import HttpRequest, HttpResponseBase

IPNetwork = ipaddress.IPv4Network | ipaddress.IPv6Network
GetResponse = Callable[[HttpRequest], HttpResponseBase]

# What Django reads with USE_X_FORWARDED_HOST, USE_X_FORWARDED_PORT and the default
# SECURE_PROXY_SSL_HEADER; only a trusted proxy may set them.
FORWARDED_META = ("HTTP_X_FORWARDED_HOST", "HTTP_X_FORWARDED_PORT", "HTTP_X_FORWARDED_PROTO")


@lru_cache(maxsize=8)
def networks(entries: tuple[str, ...]) -> tuple[IPNetwork, ...]:
    """Return the networks of proxy entries (addresses or CIDR ranges)."""
    return tuple(ipaddress.ip_network(entry, strict=False) for entry in entries)


def trusted_networks() -> tuple[IPNetwork, ...]:
    """Return the networks of ``RATELIMIT_TRUSTED_PROXIES``."""
    entries: Sequence[str] = settings.RATELIMIT_TRUSTED_PROXIES
    return networks(tuple(entries))


def is_trusted(address: str, trusted: tuple[IPNetwork, ...]) -> bool:
    """Return whether ``address`` lies in one of the ``trusted`` networks."""
    try:
        ip = ipaddress.ip_address(address)
    except ValueError:
        return False
    return any(ip in network for network in trusted)


class ForwardedHeadersMiddleware:
    """Drop the forwarded host, port and scheme of a request not sent by a trusted proxy.

    Django's USE_X_FORWARDED_HOST/PORT and SECURE_PROXY_SSL_HEADER believe these headers
    from any peer; a client talking to the app directly could otherwise choose the host
    and scheme of every absolute URL the app builds for it.
    """

    def __init__(self, get_response: GetResponse) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponseBase:
        meta = request.META
        if any(name in meta for name in FORWARDED_META) and not is_trusted(
            str(meta.get("REMOTE_ADDR") or ""), trusted_networks()
        ):
            for name in FORWARDED_META:
                meta.pop(name, None)
        return self.get_response(request)
