"""``deploy/nginx/nginx.conf``: it validates, and it proxies, ids and micro-caches.

The live test runs Debian's nginx with the shipped file, only its ports moved to free
ones, in front of a small upstream that records what reaches it.
"""

from __future__ import annotations

import contextlib
import http.client
import os
import subprocess
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest

from deploy.local.binaries import find_binary
from deploy.local.processes import free_port, wait_until

ROOT = Path(__file__).resolve().parents[2]
CONF = ROOT / "deploy" / "nginx" / "nginx.conf"
# Installed from Debian when missing (as root), else the run stops with the command.
NGINX = find_binary("nginx") if not Path("/usr/sbin/nginx").exists() else "/usr/sbin/nginx"


def prefix_dir(tmp_path: Path) -> Path:
    prefix = tmp_path / "nginx"
    for sub in ("logs", "temp", "cache", "static"):
        (prefix / sub).mkdir(parents=True, exist_ok=True)
    return prefix


def test_shipped_config_passes_nginx_t(tmp_path: Path) -> None:
    result = subprocess.run(
        [NGINX, "-t", "-p", f"{prefix_dir(tmp_path)}/", "-c", str(CONF)],
        capture_output=True,
        text=True,
    )

    assert result.returncode == 0, result.stderr
    assert "test is successful" in result.stderr


class Upstream(ThreadingHTTPServer):
    seen: list[dict[str, str]]


class _Handler(BaseHTTPRequestHandler):
    server: Upstream
    protocol_version = "HTTP/1.1"

    def do_GET(self) -> None:
        self.server.seen.append(
            {"path": self.path, **{k.lower(): v for k, v in self.headers.items()}}
        )
        body = b'{"ok": true}'
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        if self.path.startswith("/api/v1/users/"):
            self.send_header("Cache-Control", "public, max-age=5, s-maxage=5")
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args: Any) -> None:
        return None


@pytest.fixture
def edge(tmp_path: Path) -> Iterator[tuple[int, Upstream]]:
    """Run nginx with the shipped config on a free port before one recording upstream."""
    upstream = Upstream(("127.0.0.1", 0), _Handler)
    upstream.seen = []
    threading.Thread(target=upstream.serve_forever, daemon=True).start()
    up_port = upstream.server_address[1]
    port = free_port()
    text = CONF.read_text()
    text = text.replace("127.0.0.1:8080", f"127.0.0.1:{port}")
    text = text.replace("127.0.0.1:8001", f"127.0.0.1:{up_port}")
    text = text.replace("127.0.0.1:8002", f"127.0.0.1:{up_port}")
    if os.geteuid() == 0:
        # Workers would drop to `nobody`, who cannot enter pytest's private tmp directory.
        text = "user root;\n" + text
    conf = tmp_path / "nginx.conf"
    conf.write_text(text)
    prefix = prefix_dir(tmp_path)
    popen = subprocess.Popen(
        [NGINX, "-p", f"{prefix}/", "-c", str(conf), "-g", "daemon off;"],
        stderr=subprocess.PIPE,
    )
    try:
        wait_until(lambda: _get(port, "/healthz")[0] == 200, 20, "nginx")
        yield port, upstream
    finally:
        popen.terminate()
        popen.wait(10)
        upstream.shutdown()


def _get(port: int, path: str, headers: dict[str, str] | None = None) -> tuple[int, dict[str, str]]:
    with contextlib.suppress(OSError):
        connection = http.client.HTTPConnection("127.0.0.1", port, timeout=5)
        try:
            connection.request("GET", path, headers=headers or {})
            response = connection.getresponse()
            response.read()
            return response.status, {k.lower(): v for k, v in response.getheaders()}
        finally:
            connection.close()
    return 0, {}


def test_nginx_sets_a_request_id_when_absent_and_keeps_a_given_one(
    edge: tuple[int, Upstream],
) -> None:
    port, upstream = edge

    status, headers = _get(port, "/api/v1/products")
    _, kept = _get(port, "/api/v1/products?x=1", {"X-Request-ID": "abc-123"})

    assert status == 200
    assert len(headers["x-request-id"]) == 32
    assert upstream.seen[-2]["x-request-id"] == headers["x-request-id"]
    assert kept["x-request-id"] == "abc-123"
    assert upstream.seen[-1]["x-request-id"] == "abc-123"
    assert upstream.seen[-1]["x-forwarded-for"] == "127.0.0.1"


def test_micro_cache_serves_an_anonymous_public_profile_without_the_upstream(
    edge: tuple[int, Upstream],
) -> None:
    port, upstream = edge
    before = len(upstream.seen)

    first = _get(port, "/api/v1/users/7")[1]
    second = _get(port, "/api/v1/users/7")[1]
    authed = _get(port, "/api/v1/users/7", {"Authorization": "Token t"})[1]

    assert first["x-cache-status"] == "MISS"
    assert second["x-cache-status"] == "HIT"
    assert authed["x-cache-status"] == "BYPASS"
    assert [seen["path"] for seen in upstream.seen[before:]] == ["/api/v1/users/7"] * 2


def test_a_client_holding_a_read_after_token_bypasses_the_micro_cache(
    edge: tuple[int, Upstream],
) -> None:
    port, upstream = edge
    _get(port, "/api/v1/users/8")
    before = len(upstream.seen)

    status, headers = _get(port, "/api/v1/users/8", {"Cookie": "hs_read_after=0/3000060"})

    assert status == 200
    assert headers["x-cache-status"] == "BYPASS"
    assert len(upstream.seen) - before == 1


def test_static_files_come_from_the_prefix_without_the_upstream(
    edge: tuple[int, Upstream], tmp_path: Path
) -> None:
    port, upstream = edge
    (tmp_path / "nginx" / "static" / "app.css").write_text("body { color: black; }\n")
    before = len(upstream.seen)

    status, headers = _get(port, "/static/app.css")
    missing, _ = _get(port, "/static/nope.css")

    assert status == 200
    assert headers["content-type"] == "text/css"
    assert headers["cache-control"] == "max-age=3600"
    assert missing == 404
    assert len(upstream.seen) == before


def test_responses_without_cache_control_are_never_cached(edge: tuple[int, Upstream]) -> None:
    port, upstream = edge
    before = len(upstream.seen)

    _get(port, "/api/v1/products")
    _get(port, "/api/v1/products")

    assert len(upstream.seen) - before == 2


def test_metrics_answer_from_loopback(edge: tuple[int, Upstream]) -> None:
    port, _ = edge

    assert _get(port, "/metrics")[0] == 200
