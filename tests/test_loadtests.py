"""The k6 scripts of ``loadtests/k6`` against a live gunicorn of the app.

A short run with a few VUs for a few seconds: it proves the scripts (discovery, login,
browsing, orders with Idempotency-Keys polled to confirmed through a real Celery worker),
the thresholds (exit code 0 when they hold, 99 when one breaks) and the summary files.
Nothing here asserts speed: the p95 threshold is lifted for the passing run.
"""

from __future__ import annotations

import contextlib
import http.client
import io
import json
import math
import os
import subprocess
import sys
import time
from collections.abc import Iterator
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
from django.conf import global_settings
from django.core.management import call_command

from apps.observability.capacity import k6_summary_rps
from apps.orders.demo_data import demo_data_seed
from deploy.local.processes import free_port, stop_group, wait_until
from tests import events_worker
from tests.events_worker import Worker

ROOT = Path(__file__).resolve().parents[1]
K6 = Path(sys.executable).parent / "k6"
HOST = "127.0.0.1"
DEMO_USERS = 4


def _answers(port: int) -> bool:
    with contextlib.suppress(OSError):
        connection = http.client.HTTPConnection(HOST, port, timeout=5)
        try:
            connection.request("GET", "/healthz")
            return connection.getresponse().status == 200
        finally:
            connection.close()
    return False


@pytest.fixture
def seeded(transactional_db: None, settings: Any) -> None:
    """Commit a handful of demo users and products, visible to other processes."""
    # The server verifies passwords with Django's own hashers, not the suite's fast MD5.
    settings.PASSWORD_HASHERS = global_settings.PASSWORD_HASHERS
    demo_data_seed(users=DEMO_USERS, products=5, orders=0, seed=9)


@contextlib.contextmanager
def serving(tmp_path: Path, **overrides: str) -> Iterator[str]:
    """Serve the test database with gunicorn (2 workers); yield its base URL."""
    port = free_port()
    env = {
        **os.environ,
        "DATABASE_URL": events_worker.test_database_url(),
        "PROMETHEUS_MULTIPROC_DIR": str(tmp_path / "metrics"),
        "ACCESS_LOG_LEVEL": "WARNING",
        "GUNICORN_LOG_LEVEL": "warning",
        # Counters of this server alone: a run that exhausts a limit leaves none to the next.
        "RATELIMIT_KEY_PREFIX": f"rl-k6-{port}",
        **overrides,
    }
    # Orders are read back right after they are written: keep every read on the primary.
    env.pop("DATABASE_REPLICA_URLS", None)
    env.pop("OTEL_EXPORTER_OTLP_ENDPOINT", None)
    log_path = tmp_path / "gunicorn.log"
    command = [
        sys.executable, "-m", "gunicorn", "--config", str(ROOT / "deploy" / "gunicorn.conf.py"),
        "--workers", "2", "--bind", f"{HOST}:{port}", "config.wsgi:application",
    ]  # fmt: skip
    with log_path.open("wb") as log:
        popen = subprocess.Popen(
            command, cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True
        )
    try:

        def ready() -> bool:
            assert popen.poll() is None, log_path.read_text(errors="replace")[-3000:]
            return _answers(port)

        wait_until(ready, 60, "gunicorn")
        yield f"http://{HOST}:{port}"
    finally:
        stop_group(popen, 30)


@pytest.fixture
def app_server(seeded: None, event_worker: Worker, tmp_path: Path) -> Iterator[str]:
    """Serve the app with the suite's lifted rate limits; yield its base URL."""
    with serving(tmp_path) as base_url:
        yield base_url


@pytest.fixture
def limited_app_server(seeded: None, tmp_path: Path) -> Iterator[str]:
    """Serve the app with the contract's `api` limit (100 a minute); yield its base URL."""
    with serving(tmp_path, RATELIMIT_OVERRIDES="login=1000000/60") as base_url:
        yield base_url


def run_k6(script: str, base_url: str, out: Path, **env: str) -> subprocess.CompletedProcess[str]:
    """Run one scenario with the short profile; return k6's completed process."""
    settings = {
        "BASE_URL": base_url,
        "PROFILE": "short",
        "VUS": "3",
        "RAMP": "1s",
        "DURATION": "4s",
        "SLEEP": "0.2",
        "DEMO_USERS": str(DEMO_USERS),
        "SUMMARY_JSON": str(out / "summary.json"),
        "SUMMARY_HTML": str(out / "report.html"),
        **env,
    }
    return subprocess.run(
        [str(K6), "run", "--quiet", "--no-color", f"loadtests/k6/{script}"],
        cwd=ROOT,
        env={**os.environ, **settings},
        capture_output=True,
        text=True,
        timeout=120,
    )


def metric(summary: dict[str, Any], name: str) -> dict[str, Any]:
    values: dict[str, Any] = summary["metrics"][name]["values"]
    return values


def test_mixed_scenario_passes_its_thresholds_and_writes_the_summary(
    app_server: str, tmp_path: Path
) -> None:
    # p95 is lifted: this run proves behaviour; speed is `make loadtest`'s business.
    result = run_k6("mixed.js", app_server, tmp_path, P95_MS="60000")

    assert result.returncode == 0, result.stdout + result.stderr
    summary = json.loads((tmp_path / "summary.json").read_text())
    checks = metric(summary, "checks")
    assert checks["fails"] == 0
    assert checks["passes"] > 0
    assert metric(summary, "http_req_failed")["rate"] == 0
    assert metric(summary, "http_reqs")["count"] > 0
    thresholds = summary["metrics"]["http_req_failed"]["thresholds"]
    assert thresholds == {"rate<0.01": {"ok": True}}
    assert summary["metrics"]["http_req_duration"]["thresholds"] == {"p(95)<60000": {"ok": True}}
    assert "threshold http_req_failed rate<0.01: passed" in result.stdout
    html = (tmp_path / "report.html").read_text()
    assert html.startswith("<!doctype html>")
    assert "http_req_failed" in html
    assert "http" + "s://" not in html  # self-contained: nothing fetched from a CDN


def test_ordering_scenario_confirms_every_order_through_the_worker(
    app_server: str, tmp_path: Path
) -> None:
    result = run_k6("ordering.js", app_server, tmp_path, P95_MS="60000")

    assert result.returncode == 0, result.stdout + result.stderr
    summary = json.loads((tmp_path / "summary.json").read_text())
    settled = metric(summary, "orders_settled")
    assert settled["fails"] == 0
    assert settled["passes"] > 0
    assert metric(summary, "orders_confirmed")["count"] == settled["passes"]
    assert "orders_rejected" not in summary["metrics"]


def test_a_broken_threshold_makes_k6_exit_non_zero(app_server: str, tmp_path: Path) -> None:
    # No request can answer within a microsecond, so the p95 threshold must fail.
    result = run_k6("browsing.js", app_server, tmp_path, P95_MS="0.001", DURATION="2s")

    assert result.returncode == 99, result.stdout + result.stderr
    summary = json.loads((tmp_path / "summary.json").read_text())
    assert summary["metrics"]["http_req_duration"]["thresholds"] == {"p(95)<0.001": {"ok": False}}
    assert metric(summary, "checks")["fails"] == 0
    assert "threshold http_req_duration p(95)<0.001: FAILED" in result.stdout


def run_find_capacity(
    base_url: str, out: Path, *, with_cpu: bool = False, **env: str
) -> subprocess.CompletedProcess[str]:
    """Run find_capacity.js with tiny steps; return k6's completed process.

    ``with_cpu`` runs it as ``make find-capacity`` does, through loadtests/capacity_cpu.py
    (reading the CPU five times a second, for steps this short).
    """
    settings = {
        "BASE_URL": base_url,
        "START_RPS": "4",
        "STEP_RPS": "4",
        "STEPS": "3",
        "STEP_SECONDS": "2",
        "RAMP_SECONDS": "1",
        "MAX_VUS": "20",
        "DEMO_USERS": str(DEMO_USERS),
        # Steps this short plan a few dozen requests; one landing in the next step's
        # second must not count as a step that could not keep up.
        "MIN_ACHIEVED": "0.5",
        # Steps this short may abort the run as soon as they break a threshold.
        "SETUP_SECONDS": "0",
        "SETTLE_SECONDS": "0",
        "CAPACITY_JSON": str(out / "capacity.json"),
        "SUMMARY_JSON": str(out / "find_capacity_summary.json"),
        **env,
    }
    k6 = [str(K6), "run", "--quiet", "--no-color", "loadtests/k6/find_capacity.js"]
    cpu = [sys.executable, "-m", "loadtests.capacity_cpu", "--interval", "0.2", "--"]
    return subprocess.run(
        [*cpu, *k6] if with_cpu else k6,
        cwd=ROOT,
        env={**os.environ, **settings},
        capture_output=True,
        text=True,
        timeout=120,
    )


def test_find_capacity_reports_the_highest_step_that_held_for_capacity_plan(
    app_server: str, tmp_path: Path
) -> None:
    # p95 lifted: every step holds, so the answer is the last step's achieved rate.
    before_ms = time.time() * 1000
    result = run_find_capacity(app_server, tmp_path, with_cpu=True, P95_MS="60000")
    after_ms = time.time() * 1000

    assert result.returncode == 0, result.stdout + result.stderr
    capacity = json.loads((tmp_path / "capacity.json").read_text())
    assert capacity["found"] is True
    assert [step["target_rps"] for step in capacity["steps"]] == [4, 8, 12]
    assert all(step["held"] for step in capacity["steps"])
    assert all(step["failed_rate"] == 0 for step in capacity["steps"])
    assert capacity["highest_sustained_target_rps"] == 12
    assert capacity["broke_at_target_rps"] is None
    # Where capacity_cpu.py finds each step on the wall clock: after setup, before the end.
    assert before_ms < capacity["scenario_start_ms"] < after_ms - 3 * 3000
    assert (capacity["step_seconds"], capacity["ramp_seconds"]) == (3, 1)
    # ... where it found each step's hold, with k6 busy in it. (This gunicorn runs as
    # `python -m gunicorn`, so its time counts as "other", not "gunicorn".)
    for step in capacity["steps"]:
        busy = step["cpu_cores_busy"]
        assert busy["load generator"] > 0, step
        assert busy["machine"] >= busy["load generator"], step
    assert capacity["cpu_verdict"] == "no step broke: raise STEPS or STEP_RPS to find the limit"
    assert "CPU of this machine" in result.stdout
    sustained = capacity["highest_sustained_rps"]
    assert sustained == capacity["steps"][-1]["achieved_rps"]
    assert sustained > 0
    assert f"highest sustained: {sustained} RPS (step 3, target 12 RPS)" in result.stdout
    # capacity_plan --from-k6 reads the figure as the per-pod RPS.
    assert k6_summary_rps(tmp_path / "capacity.json") == Decimal(str(sustained))
    out = io.StringIO()
    call_command(
        "capacity_plan", "--peak-rps", "10", "--growth", "2", "--safety", "1.5",
        "--from-k6", str(tmp_path / "capacity.json"), stdout=out,
    )  # fmt: skip
    assert f"measured by k6 in {tmp_path / 'capacity.json'}" in out.getvalue()
    assert f"Pods needed: {math.ceil(30 / Decimal(str(sustained)))}\n" in out.getvalue()


def test_find_capacity_stops_at_the_first_step_that_breaks_a_threshold(
    app_server: str, tmp_path: Path
) -> None:
    # No request answers within a microsecond: the first step breaks and aborts the run.
    result = run_find_capacity(app_server, tmp_path, P95_MS="0.001", STEPS="5", ORDER_SHARE="0")

    assert result.returncode == 99, result.stdout + result.stderr
    capacity = json.loads((tmp_path / "capacity.json").read_text())
    assert capacity["found"] is False
    assert capacity["highest_sustained_rps"] == 0
    assert capacity["broke_at_target_rps"] == 4
    assert capacity["broke_because"].startswith("p95 ")
    assert len(capacity["steps"]) == 1  # aborted: the later steps never ran
    assert "highest sustained: none" in result.stdout


def test_find_capacity_says_a_step_broke_on_the_rate_limits_not_the_capacity(
    limited_app_server: str, tmp_path: Path
) -> None:
    # Anonymous reads from one address, under the contract's `api` limit (100 a minute):
    # the first step sends about 120, so it breaks on 429s.
    result = run_find_capacity(
        limited_app_server, tmp_path, ORDER_SHARE="0", START_RPS="60", STEPS="2", RAMP_SECONDS="0",
        P95_MS="60000",
    )  # fmt: skip

    assert result.returncode == 99, result.stdout + result.stderr
    capacity = json.loads((tmp_path / "capacity.json").read_text())
    first = capacity["steps"][0]
    assert first["held"] is False
    assert first["rate_limited"] > 0
    assert first["failed_rate"] > 0.01
    assert (
        f"{first['rate_limited']} answered 429 (the rate limits, not the capacity"
        in (first["reason"])
    )
    assert "RATELIMIT_OVERRIDES" in result.stdout


def test_find_capacity_says_no_step_ran_when_its_setup_fails(tmp_path: Path) -> None:
    # Nothing listens there: discovery fails in setup(), before the first step.
    result = run_find_capacity(f"http://{HOST}:{free_port()}", tmp_path)

    assert result.returncode not in (0, 99), result.stdout + result.stderr
    capacity = json.loads((tmp_path / "capacity.json").read_text())
    assert capacity["found"] is False
    assert capacity["steps"] == []
    assert "highest sustained: none - no step ran (setup() failed: see k6's error)" in (
        result.stdout
    )
    assert "every step held" not in result.stdout
