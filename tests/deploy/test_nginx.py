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
    # Answer 502 to everything (an app that fails).
    failing: bool
    # Answer 503 to everything (the app's answer while its database is down).
    unavailable: bool
    # Requests to /slow in the app at once, and the most seen together.
    in_flight: int
    most_in_flight: int
    changed: threading.Condition


class _Handler(BaseHTTPRequestHandler):
    server: Upstream
    protocol_version = "HTTP/1.1"

    def do_GET(self) -> None:
        self.server.seen.append(
            {"path": self.path, **{k.lower(): v for k, v in self.headers.items()}}
        )
        if self.path == "/slow":
            self._wait_for_company()
        body = b'{"ok": true}'
        self.send_response(502 if self.server.failing else 503 if self.server.unavailable else 200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        if self.path.startswith("/api/v1/users/"):
            self.send_header("Cache-Control", "public, max-age=5, s-maxage=5")
        if self.path.startswith("/api/v1/products/"):
            self.send_header("Cache-Control", "public, max-age=0, s-maxage=1")
        self.end_headers()
        self.wfile.write(body)

    def _wait_for_company(self) -> None:
        """Hold the request until a second one is in the app too, for at most 1 s."""
        with self.server.changed:
            self.server.in_flight += 1
            self.server.most_in_flight = max(self.server.most_in_flight, self.server.in_flight)
            self.server.changed.notify_all()
            self.server.changed.wait_for(lambda: self.server.in_flight >= 2, timeout=1)
        with self.server.changed:
            self.server.in_flight -= 1

    def log_message(self, *args: Any) -> None:
        return None


@pytest.fixture
def edge(tmp_path: Path) -> Iterator[tuple[int, Upstream]]:
    """Run nginx with the shipped config on a free port before one recording upstream."""
    upstream = Upstream(("127.0.0.1", 0), _Handler)
    upstream.seen = []
    upstream.failing = upstream.unavailable = False
    upstream.in_flight = upstream.most_in_flight = 0
    upstream.changed = threading.Condition()
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


def test_the_app_sees_the_host_and_port_the_client_used(edge: tuple[int, Upstream]) -> None:
    port, upstream = edge

    _get(port, "/api/v1/orders", {"Host": f"127.0.0.1:{port}"})
    _get(port, "/api/v1/orders", {"Host": f"localhost:{port}", "X-Forwarded-Host": "evil:1"})

    assert port != 80
    assert upstream.seen[-2]["host"] == f"127.0.0.1:{port}"
    assert upstream.seen[-2]["x-forwarded-host"] == f"127.0.0.1:{port}"
    assert upstream.seen[-1]["host"] == f"localhost:{port}"
    assert upstream.seen[-1]["x-forwarded-host"] == f"localhost:{port}"


def test_each_host_and_port_has_its_own_micro_cache_entry(edge: tuple[int, Upstream]) -> None:
    port, upstream = edge

    one = _get(port, "/api/v1/users/9", {"Host": f"127.0.0.1:{port}"})[1]
    other = _get(port, "/api/v1/users/9", {"Host": f"localhost:{port}"})[1]
    again = _get(port, "/api/v1/users/9", {"Host": f"localhost:{port}"})[1]

    assert [one["x-cache-status"], other["x-cache-status"]] == ["MISS", "MISS"]
    assert again["x-cache-status"] == "HIT"
    hosts = [seen["host"] for seen in upstream.seen[-2:]]
    assert hosts == [f"127.0.0.1:{port}", f"localhost:{port}"]


def test_concurrent_requests_for_an_uncacheable_url_reach_the_app_together(
    edge: tuple[int, Upstream],
) -> None:
    port, upstream = edge
    threads = [threading.Thread(target=_get, args=(port, "/slow")) for _ in range(2)]

    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(10)

    assert upstream.most_in_flight == 2


def test_an_expired_catalogue_answer_is_never_served_stale(edge: tuple[int, Upstream]) -> None:
    port, upstream = edge
    first = _get(port, "/api/v1/products/5")[1]
    assert _get(port, "/api/v1/products/5")[1]["x-cache-status"] == "HIT"
    upstream.failing = True

    # The entry expires after its s-maxage (1 s); then the app's failure shows.
    wait_until(lambda: _get(port, "/api/v1/products/5")[1]["x-cache-status"] != "HIT", 10, "expiry")
    status, headers = _get(port, "/api/v1/products/5")

    assert first["x-cache-status"] == "MISS"
    assert status == 502
    assert headers["x-cache-status"] != "STALE"


def test_the_apps_503_is_passed_on_once_and_takes_no_instance_out(
    edge: tuple[int, Upstream],
) -> None:
    # The app answers 503 while a dependency every instance shares (the database) is
    # down. Counted as an instance failure, 3 of them took both instances out for
    # fail_timeout: nginx answered 502 for 5 s after the database was back (found by
    # make failover-drill's switchover).
    port, upstream = edge
    upstream.unavailable = True
    answers = [_get(port, f"/api/v1/orders/{n}")[0] for n in range(8)]
    reached = len([r for r in upstream.seen if r["path"].startswith("/api/v1/orders/")])
    upstream.unavailable = False

    assert answers == [503] * 8
    assert reached == 8  # not retried on the other instance
    assert _get(port, "/api/v1/orders/9")[0] == 200
