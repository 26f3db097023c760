"""The ``edge`` section: the anonymous profile through the stack's nginx micro-cache.

One run, measured from outside with wrk in interleaved rounds (``--rounds``, the issue's
figure used 3): the bare gunicorn floor, the profile from gunicorn directly, the same
profile through deploy/nginx/nginx.conf (its ports moved to free ones, both upstreams
pointed at the one gunicorn) once the micro-cache holds it, and the same nginx serving
a static file of the profile response's exact bytes from its ``/static/`` location,
the micro-cache's own ceiling (goal: at least 0.8 of it).

    .venv/bin/python -m loadtests.bench --section edge --rounds 3
"""

from __future__ import annotations

import contextlib
import http.client
import os
import subprocess
import sys
import tempfile
from pathlib import Path
from urllib.parse import urlsplit

from deploy.local.binaries import find_binary
from deploy.local.processes import free_port, wait_until
from loadtests.bench.cases import FLOOR, Case, profile_user
from loadtests.bench.errors import BenchError
from loadtests.bench.gunicorn import HOST
from loadtests.bench.options import BenchOptions
from loadtests.bench.report import case_line, name_width
from loadtests.bench.runner import CaseResult, PreparedCase, measure, start_sites
from loadtests.bench.site import BASE_DIR, Request
from loadtests.bench.wrk import WrkSettings, find_wrk

NGINX_CONF = BASE_DIR / "deploy" / "nginx" / "nginx.conf"
STATIC_GOAL = 0.8
UPSTREAM = "profile-ours"
PROFILE_PATH = "/api/v1/users/{id}"
STATIC_PATH = "/static/profile.json"

DIRECT = Case("profile, gunicorn directly (L1 hit)", UPSTREAM, PROFILE_PATH)
# Both are served by nginx in front of the same target; nothing reaches it once cached.
MICRO_CACHE = Case("profile, nginx micro-cache hit", UPSTREAM, PROFILE_PATH)
STATIC = Case("static file of the same size, same nginx", UPSTREAM, STATIC_PATH)


def section(options: BenchOptions) -> int:
    """Measure and print the section; return 0, or 1 when a case did not answer 2xx."""
    settings = WrkSettings(threads=options.threads, connections=options.connections)
    with contextlib.ExitStack() as stack:
        workdir = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="highscale-edge-")))
        sites = start_sites(stack, [FLOOR.target, UPSTREAM], options.workers, workdir, _progress)
        upstream = sites[UPSTREAM]
        path = profile_user(upstream, Request(PROFILE_PATH)).path
        _, body = get(upstream.base_url + path)
        port = free_port()
        prefix = workdir / "nginx"
        _start_nginx(stack, prefix, nginx_config(prefix, port, upstream.base_url, body))
        edge_url = f"http://{HOST}:{port}"
        get(edge_url + path)
        headers, _ = get(edge_url + path)
        if headers.get("x-cache-status") != "HIT":
            raise BenchError(f"nginx did not answer {path} from its micro-cache: {headers}")
        prepared = [
            PreparedCase(FLOOR, sites[FLOOR.target].base_url + "/", {}),
            PreparedCase(DIRECT, upstream.base_url + path, {}),
            PreparedCase(MICRO_CACHE, edge_url + path, {}),
            PreparedCase(STATIC, edge_url + STATIC_PATH, {}),
        ]
        results = measure(
            prepared,
            wrk=find_wrk(),
            settings=settings,
            duration=options.duration,
            rounds=options.rounds,
            warmup=options.warmup,
            progress=_progress,
        )
    for line in report(results, settings, options, len(body)):
        print(line)
    return 1 if any(r.problems() for r in results) else 0


def report(
    results: list[CaseResult], settings: WrkSettings, options: BenchOptions, size: int
) -> list[str]:
    """Return the section's lines: each case against the floor, the cache against static."""
    rps = {r.case.name: r.requests_per_second for r in results}
    floor, cached, static = rps[FLOOR.name], rps[MICRO_CACHE.name], rps[STATIC.name]
    share = cached / static if static else 0.0
    width = name_width(results)
    return [
        "",
        f"edge: deploy/nginx/nginx.conf in front of gunicorn (deploy/gunicorn.conf.py, "
        f"-w {options.workers}), wrk {settings.describe()} from outside, "
        f"{options.rounds} x {options.duration} s interleaved; response body {size} bytes",
        *(case_line(result, floor, width) for result in results),
        f"  micro-cache hit / static file: {share:.2f} (goal >= {STATIC_GOAL:.2f}: "
        f"{'met' if share >= STATIC_GOAL else 'MISSED'}); "
        f"micro-cache hit / bare gunicorn floor: {cached / floor if floor else 0.0:.2f}",
    ]


def nginx_config(prefix: Path, port: int, upstream_url: str, static_body: bytes) -> Path:
    """Lay out an nginx prefix (logs, temp, cache, static with the file of ``static_body``)
    and write the shipped config there, listening on ``port`` in front of ``upstream_url``;
    return the config's path.
    """
    for sub in ("logs", "temp", "cache", "static"):
        (prefix / sub).mkdir(parents=True, exist_ok=True)
    (prefix / "static" / Path(STATIC_PATH).name).write_bytes(static_body)
    upstream = upstream_url.removeprefix("http://")
    text = NGINX_CONF.read_text()
    for old, new in (
        ("127.0.0.1:8080", f"{HOST}:{port}"),
        ("127.0.0.1:8001", upstream),
        ("127.0.0.1:8002", upstream),
    ):
        if old not in text:
            raise BenchError(f"{NGINX_CONF} no longer holds {old}; update loadtests/bench/edge.py")
        text = text.replace(old, new)
    if os.geteuid() == 0:
        # Workers would drop to `nobody`, who cannot enter the private directory.
        text = "user root;\n" + text
    config = prefix / "nginx.conf"
    config.write_text(text)
    return config


def _start_nginx(stack: contextlib.ExitStack, prefix: Path, config: Path) -> None:
    """Start nginx in the foreground on ``config`` (stopped when ``stack`` closes)."""
    log = stack.enter_context((prefix / "logs" / "stderr.log").open("wb"))
    popen = subprocess.Popen(
        [find_binary("nginx"), "-p", f"{prefix}/", "-c", str(config), "-g", "daemon off;"],
        stdout=log,
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )
    stack.callback(_stop, popen)
    listen = config.read_text().split("listen ", 1)[1].split()[0]

    def ready() -> bool:
        if popen.poll() is not None:
            raise BenchError(f"nginx exited with {popen.returncode}: see {prefix}/logs")
        with contextlib.suppress(OSError):
            get(f"http://{listen}/healthz")
            return True
        return False

    wait_until(ready, 20, "nginx")


def _stop(popen: subprocess.Popen[bytes]) -> None:
    popen.terminate()
    try:
        popen.wait(10)
    except subprocess.TimeoutExpired:
        popen.kill()
        popen.wait(5)


def get(url: str) -> tuple[dict[str, str], bytes]:
    """Return the headers (lower-case names) and body of ``GET url``; raise BenchError
    unless it answers 200.
    """
    parts = urlsplit(url)
    connection = http.client.HTTPConnection(parts.hostname or HOST, parts.port, timeout=10)
    try:
        connection.request("GET", parts.path)
        response = connection.getresponse()
        body = response.read()
    finally:
        connection.close()
    if response.status != 200:
        raise BenchError(f"GET {url} answered {response.status}: {body[:300]!r}")
    return {k.lower(): v for k, v in response.getheaders()}, body


def _progress(message: str) -> None:
    print(f"  {message}", file=sys.stderr, flush=True)
