"""The ``make bench`` harness runs end to end and reports each case against its floor or peer;
the textbook peer's views answer as written (real Redis and PostgreSQL, no timing asserted).
"""

from __future__ import annotations

import ast
import http.client
import json
import os
import re
import signal
import subprocess
import sys
import uuid
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import urlsplit

import pytest

from deploy.local.processes import port_open
from loadtests.bench.gunicorn import GunicornServer
from loadtests.bench.wrk import WrkResult

BASE_DIR = Path(__file__).resolve().parent.parent
FLOOR = "bare WSGI (floor)"
HEALTHZ = "django JSON view (/healthz, full middleware)"
OURS_PROFILE = "cached read, ours (L1 hit, our limiter and metrics)"
LINE_RE = re.compile(
    r"^(?P<name>\S.*?)\s+(?P<rps>\d+) req/s\s+p50\s+(?P<p50>[\d.]+) ms\s+"
    r"p99\s+(?P<p99>[\d.]+) ms\s+ratio (?P<ratio>\d+\.\d\d)$",
    re.MULTILINE,
)


def run_bench(*args: str, timeout: float = 90) -> subprocess.CompletedProcess[str]:
    """Run ``python -m loadtests.bench``; on timeout stop it as Ctrl-C would, then fail."""
    command = [sys.executable, "-m", "loadtests.bench", *args]
    process = subprocess.Popen(
        command, cwd=BASE_DIR, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
    )
    try:
        stdout, stderr = process.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        process.send_signal(signal.SIGTERM)
        stdout, stderr = process.communicate(timeout=30)
        raise AssertionError(f"bench did not finish in {timeout} s:\n{stdout}\n{stderr}") from None
    return subprocess.CompletedProcess(command, process.returncode, stdout, stderr)


def test_bench_prints_each_case_as_a_ratio_to_the_floor_and_stops_its_servers(tmp_path):
    json_path = tmp_path / "bench.json"

    completed = run_bench(
        "--duration", "1", "--rounds", "1", "--only", "django JSON view", "--json", str(json_path)
    )

    assert completed.returncode == 0, completed.stdout + completed.stderr
    lines = {m["name"]: m for m in LINE_RE.finditer(completed.stdout)}
    assert list(lines) == [FLOOR, HEALTHZ], completed.stdout
    assert lines[FLOOR]["ratio"] == "1.00"
    assert float(lines[HEALTHZ]["ratio"]) > 0
    results = json.loads(json_path.read_text())
    cases = {case["name"]: case for case in results["cases"]}
    assert list(cases) == [FLOOR, HEALTHZ]
    assert cases[FLOOR]["ratio"] == 1.0
    assert cases[HEALTHZ]["ratio"] == float(lines[HEALTHZ]["ratio"])
    for case in cases.values():
        assert case["requests_per_second"] > 0
        assert case["non_2xx"] == 0
        assert case["problems"] == []
        assert len(case["rounds"]) == 1
        url = urlsplit(case["url"])
        assert not port_open(url.hostname or "", url.port or 80), f"{case['url']} still answers"


def test_bench_registry_starts_with_the_floor_then_the_plain_django_view():
    from loadtests.bench.cases import CASES

    assert [case.name for case in CASES[:2]] == [FLOOR, HEALTHZ]


def test_the_bench_modules_import_each_other_in_no_circle():
    modules = {path.stem: path for path in (BASE_DIR / "loadtests" / "bench").glob("*.py")}
    graph: dict[str, set[str]] = {}
    for name, path in modules.items():
        imported = set()
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.ImportFrom) and node.module:
                names = [node.module, *(f"{node.module}.{alias.name}" for alias in node.names)]
            elif isinstance(node, ast.Import):
                names = [alias.name for alias in node.names]
            else:
                continue
            imported |= {n.rsplit(".", 1)[1] for n in names if n.startswith("loadtests.bench.")}
        graph[name] = (imported & set(modules)) - {name}

    # Kahn's algorithm: what cannot be ordered lies on a circle.
    remaining = {name: set(deps) for name, deps in graph.items()}
    while ready := [name for name, deps in remaining.items() if not deps]:
        for name in ready:
            del remaining[name]
        for deps in remaining.values():
            deps.difference_update(ready)
    assert remaining == {}


def test_selecting_a_case_compared_with_a_peer_selects_the_peer_too():
    from loadtests.bench.cases import CASES, FLOOR, TEXTBOOK_PROFILE, select_cases

    selected = select_cases("cached read, ours")

    assert [case.name for case in selected] == [FLOOR.name, OURS_PROFILE, TEXTBOOK_PROFILE]
    names = {case.name for case in CASES}
    assert all(case.peer in names for case in CASES if case.peer)


def _wrk(rps: float, requests: int = 1000) -> WrkResult:
    return WrkResult(rps, 1.0, 2.0, requests, 0, {"connect": 0})


def test_a_case_with_a_peer_is_printed_as_a_ratio_to_it_with_its_goal():
    from loadtests.bench.cases import CASES, TEXTBOOK_PROFILE
    from loadtests.bench.report import peer_lines, peer_ratios
    from loadtests.bench.runner import CaseResult

    by_name = {case.name: case for case in CASES}
    ours = CaseResult(by_name[OURS_PROFILE], "u", [_wrk(1300), _wrk(1100)])
    peer = CaseResult(by_name[TEXTBOOK_PROFILE], "u", [_wrk(1000)])

    assert peer_ratios([ours, peer]) == {OURS_PROFILE: 1.2}
    assert peer_lines([ours, peer]) == [f"  {OURS_PROFILE}: 1.20 x its peer (goal >= 1.20: met)"]
    assert peer_lines([ours]) == []


def test_order_placement_is_printed_against_the_floor_the_peer_and_the_cpu_goal():
    from loadtests.bench.events import OrderPlacement, placement_lines, web_cpu_line

    ours = OrderPlacement([_wrk(400, requests=2000)], {"web": 8.0, "PostgreSQL": 2.0})
    peer = OrderPlacement([_wrk(500, requests=2000)], {"web": 6.0})

    lines = placement_lines(ours, peer, floor_rps=2000)

    assert lines[-1] == (
        "  ours / floor 0.20 (goal >= 0.25: MISSED); "
        "ours / textbook peer 0.80 (goal >= 1.00: MISSED)"
    )
    assert web_cpu_line(ours.cpu_ms_per_order(), peer.cpu_ms_per_order()) == (
        "  web CPU per order: ours 4.00 ms (goal <= 3 ms: MISSED), textbook peer 3.00 ms, "
        "ratio 1.33 to the peer (lower is cheaper)"
    )


def test_our_added_latency_is_set_against_the_fastest_peers():
    from loadtests.bench.ratelimit import peer_ratio_line

    latency = {
        "plain": 1.0, "ours": 1.05, "ours-gcra": 1.04, "django-ratelimit": 1.2,
        "drf-plain": 2.0, "drf-ours": 2.2, "drf-throttle": 2.4,
    }  # fmt: skip

    assert peer_ratio_line(latency) == (
        "    ours / fastest peer's added p50 (django-ratelimit 4.1 (django-redis), +0.200 ms), "
        "goal <= 0.5: ours: decorator, sliding window 0.25 (met); "
        "ours: DRF throttle, sliding window 1.00 (MISSED)"
    )


def _serve_textbook(tmp_path: Path, env: dict[str, str]) -> Iterator[GunicornServer]:
    from loadtests.bench.gunicorn import start_gunicorn
    from loadtests.bench.site import GUNICORN_CONFIG
    from loadtests.bench.targets import PLAIN_DJANGO

    server = start_gunicorn(
        target="textbook",
        app=PLAIN_DJANGO,
        workers=1,
        env=env,
        workdir=tmp_path,
        config=GUNICORN_CONFIG,
    )
    try:
        server.wait_ready("/healthz")
        yield server
    finally:
        server.stop()


def _call(server: GunicornServer, method: str, path: str, body=None, headers=None):
    connection = http.client.HTTPConnection("127.0.0.1", server.port, timeout=30)
    try:
        payload = json.dumps(body) if body is not None else None
        connection.request(method, path, payload, headers or {})
        response = connection.getresponse()
        return response.status, response.read()
    finally:
        connection.close()


_CACHED_PROFILE = """
from django.core.cache import cache
from apps.users.models import User
cached = User.objects.create_user("cached", "cached@example.com", "bench-pass-123")
uncached = User.objects.create_user("uncached", "uncached@example.com", "bench-pass-123")
cache.set(f"user:{cached.pk}", {"id": cached.pk, "username": "from the cache"}, 60)
print(cached.pk, uncached.pk)
"""


def test_the_textbook_read_answers_the_cached_document_then_429_past_its_limit(tmp_path):
    from loadtests.bench.site import base_environment, manage
    from loadtests.bench.targets import prepare_textbook

    # The harness's Redis, emptied before each test; three reads an hour per address.
    env = base_environment() | prepare_textbook(tmp_path, redis_url=os.environ["REDIS_URL"])
    env["BENCH_TEXTBOOK_RATE"] = "3/h"
    cached, uncached = manage(env, "shell", "-c", _CACHED_PROFILE).split()[-2:]

    for server in _serve_textbook(tmp_path, env):
        first = _call(server, "GET", f"/api/v1/users/{cached}")
        filled = _call(server, "GET", f"/api/v1/users/{uncached}")
        again = _call(server, "GET", f"/api/v1/users/{uncached}")
        limited = _call(server, "GET", f"/api/v1/users/{cached}")

    assert first[0] == 200
    assert json.loads(first[1]) == {"id": int(cached), "username": "from the cache"}
    assert filled[0] == again[0] == 200
    profile = json.loads(filled[1])
    assert {k: v for k, v in profile.items() if k != "date_joined"} == {
        "id": int(uncached),
        "username": "uncached",
        "display_name": "",
    }
    assert json.loads(again[1]) == profile
    assert limited[0] == 429
    assert json.loads(limited[1]) == {"detail": "Too many requests."}


_ORDER_SETUP = """
from rest_framework.authtoken.models import Token
from apps.orders.models import Product
from apps.users.models import User
user = User.objects.create_user("buyer", "buyer@example.com", "bench-pass-123")
product = Product.objects.create(sku="TB-1", name="Textbook", price="2.50", stock=10)
print(product.pk, Token.objects.create(user=user).key)
"""


@pytest.fixture
def textbook_database() -> Iterator[str]:
    """Return the URL of a fresh database on the harness's PostgreSQL, dropped afterwards."""
    import psycopg

    server = os.environ["DATABASE_URL"].rsplit("/", 1)[0]
    name = f"bench_textbook_{uuid.uuid4().hex[:12]}"
    with psycopg.connect(f"{server}/postgres", autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    try:
        yield f"{server}/{name}"
    finally:
        with psycopg.connect(f"{server}/postgres", autocommit=True) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def test_the_textbook_order_create_writes_the_order_and_its_lines_in_one_transaction(
    tmp_path, textbook_database
):
    import psycopg

    from loadtests.bench.site import base_environment, manage, production_settings
    from loadtests.bench.targets import TEXTBOOK_SETTINGS, deploy_config_environment

    env = base_environment() | production_settings(TEXTBOOK_SETTINGS)
    env |= {"DATABASE_URL": textbook_database} | deploy_config_environment(tmp_path)
    manage(env, "migrate", "--noinput")
    product_id, token = manage(env, "shell", "-c", _ORDER_SETUP).split()[-2:]
    headers = {"Content-Type": "application/json", "Authorization": f"Token {token}"}
    line = {"product_id": int(product_id), "quantity": 3}

    for server in _serve_textbook(tmp_path, env):
        placed = _call(server, "POST", "/api/v1/orders", {"items": [line]}, headers)
        # The same product twice breaks the lines' unique constraint after the order's
        # INSERT: the transaction takes the order back with it.
        failed = _call(server, "POST", "/api/v1/orders", {"items": [line, line]}, headers)
        anonymous = _call(server, "POST", "/api/v1/orders", {"items": [line]})

    assert placed[0] == 201, placed
    body = json.loads(placed[1])
    assert body["status"] == "pending"
    assert body["total"] == "7.50"
    assert body["items"] == [{"product_id": int(product_id), "quantity": 3, "unit_price": "2.50"}]
    assert failed[0] == 500
    assert anonymous[0] == 401
    with psycopg.connect(textbook_database) as conn:
        orders = conn.execute("SELECT id, total FROM orders_order").fetchall()
        lines = conn.execute("SELECT order_id, product_id, quantity FROM orders_orderline")
        assert [(order_id, str(total)) for order_id, total in orders] == [(body["id"], "7.50")]
        assert lines.fetchall() == [(body["id"], int(product_id), 3)]


def test_the_edge_section_prints_the_micro_cache_against_the_floor_and_a_static_file():
    completed = run_bench(
        "--section", "edge", "--duration", "1", "--rounds", "1", "--warmup", "0", timeout=180
    )

    assert completed.returncode == 0, completed.stdout + completed.stderr
    lines = {m["name"]: m for m in LINE_RE.finditer(completed.stdout)}
    assert list(lines) == [
        FLOOR,
        "profile, gunicorn directly (L1 hit)",
        "profile, nginx micro-cache hit",
        "static file of the same size, same nginx",
    ]
    assert re.search(
        r"^  micro-cache hit / static file: \d+\.\d\d \(goal >= 0\.80: (met|MISSED)\); "
        r"micro-cache hit / bare gunicorn floor: \d+\.\d\d$",
        completed.stdout,
        re.MULTILINE,
    ), completed.stdout


def test_the_cached_read_is_printed_against_the_textbook_peer_in_the_same_run():
    completed = run_bench("--only", "cached read, ours", "--duration", "1", "--rounds", "1")

    assert completed.returncode == 0, completed.stdout + completed.stderr
    from loadtests.bench.cases import TEXTBOOK_PROFILE

    lines = {m["name"]: m for m in LINE_RE.finditer(completed.stdout)}
    assert list(lines) == [FLOOR, OURS_PROFILE, TEXTBOOK_PROFILE]
    assert re.search(
        rf"^  {re.escape(OURS_PROFILE)}: \d+\.\d\d x its peer \(goal >= 1\.20: (met|MISSED)\)$",
        completed.stdout,
        re.MULTILINE,
    ), completed.stdout
