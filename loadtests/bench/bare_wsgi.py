"""The floor: the cheapest WSGI application gunicorn can serve.

It answers every request with the same small JSON body, so its req/s is what the
server, the kernel and wrk cost on this machine, with no framework at all.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import Any

BODY = b'{"status": "ok", "service": "bare-wsgi"}'
HEADERS = [
    ("Content-Type", "application/json"),
    ("Content-Length", str(len(BODY))),
]

StartResponse = Callable[[str, list[tuple[str, str]]], Any]


def application(environ: dict[str, Any], start_response: StartResponse) -> Iterable[bytes]:
    """Answer 200 with the constant JSON body, whatever the request."""
    start_response("200 OK", HEADERS)
    return [BODY]
