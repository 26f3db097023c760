"""A local nginx: the shipped configuration with its listen address and upstream servers."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from deploy.local.processes import ServerError

SHIPPED = Path(__file__).resolve().parents[1] / "nginx" / "nginx.conf"
SHIPPED_LISTEN = "listen 127.0.0.1:8080"
SHIPPED_SERVERS = (
    "        server 127.0.0.1:8001 max_fails=3 fail_timeout=5s;\n"
    "        server 127.0.0.1:8002 max_fails=3 fail_timeout=5s;\n"
)


def write_config(prefix: Path, *, listen: str, web_ports: Sequence[int]) -> Path:
    """Write deploy/nginx/nginx.conf into the nginx ``prefix`` (with its directories),
    listening on ``listen`` (``host:port`` or ``port``) and proxying to gunicorn on
    ``web_ports`` of 127.0.0.1; return the file."""
    for sub in ("logs", "temp", "cache", "static"):
        (prefix / sub).mkdir(parents=True, exist_ok=True)
    text = SHIPPED.read_text()
    if SHIPPED_SERVERS not in text or SHIPPED_LISTEN not in text:
        raise ServerError(f"{SHIPPED}: the listen line or upstream servers are not where expected")
    servers = "".join(
        f"        server 127.0.0.1:{port} max_fails=3 fail_timeout=5s;\n" for port in web_ports
    )
    text = text.replace(SHIPPED_LISTEN, f"listen {listen}").replace(SHIPPED_SERVERS, servers)
    path = prefix / "nginx.conf"
    path.write_text(text)
    return path
