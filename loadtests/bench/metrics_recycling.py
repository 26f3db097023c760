"""``/metrics`` scrape time after 1,000 gunicorn worker recycles (goal: at most 50 ms).

Run by ``python -m loadtests.bench --section metrics`` (and by ``make bench``). One
gunicorn server from deploy/gunicorn.conf.py with 2 workers and ``--max-requests 1``:
every request ends its worker, so each answered request is one recycle and one
``child_exit`` fold. The app is preloaded so that a fork costs milliseconds instead of
a Django start-up; the multiprocess files each worker leaves are the same either way.
Scrapes are timed on the fresh server (the floor, no recycles yet) and again after the
recycles, on the same series, and printed as a ratio. The section also checks that the
totals stayed exact and the directory bounded, and fails (status 1) when they did not.
"""

from __future__ import annotations

import http.client
import os
import secrets
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from loadtests.bench.errors import BenchError
from loadtests.bench.targets import BASE_DIR, base_environment
from tests.servers import free_port, port_open, wait_until

HOST = "127.0.0.1"
RECYCLES = 1_000
SCRAPES = 30
GOAL_MS = 50.0
HEALTHZ_SAMPLE = 'http_requests_total{endpoint="/healthz",method="GET",status="200"}'


def _get(port: int, path: str) -> tuple[int, bytes]:
    # A fresh connection each time: a keep-alive one would die with its worker.
    connection = http.client.HTTPConnection(HOST, port, timeout=30)
    try:
        connection.request("GET", path, headers={"Connection": "close"})
        response = connection.getresponse()
        return response.status, response.read()
    finally:
        connection.close()


def _time_scrapes(port: int) -> tuple[list[float], bytes]:
    """Return the duration of SCRAPES scrapes in ms, and the last body."""
    times, body = [], b""
    for _ in range(SCRAPES):
        started = time.perf_counter()
        status, body = _get(port, "/metrics")
        times.append((time.perf_counter() - started) * 1000)
        if status != 200:
            raise BenchError(f"/metrics answered {status}")
    return times, body


def _time_renders(directory: Path, rounds: int = 200) -> float:
    """Return the median time, in ms, of rendering ``/metrics`` from ``directory``."""
    from apps.observability.exposition import render_metrics

    previous = os.environ.get("PROMETHEUS_MULTIPROC_DIR")
    os.environ["PROMETHEUS_MULTIPROC_DIR"] = str(directory)
    try:
        times = []
        for _ in range(rounds):
            started = time.perf_counter()
            render_metrics(None)
            times.append((time.perf_counter() - started) * 1000)
    finally:
        if previous is None:
            os.environ.pop("PROMETHEUS_MULTIPROC_DIR", None)
        else:
            os.environ["PROMETHEUS_MULTIPROC_DIR"] = previous
    return statistics.median(times)


def _healthz_total(body: bytes) -> float:
    for line in body.decode().splitlines():
        if line.startswith(HEALTHZ_SAMPLE + " "):
            return float(line.rsplit(" ", 1)[1])
    return 0.0


def _p(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))]


def run_section() -> int:
    """Print scrape time before and after RECYCLES recycles; return 0, or 1 on failure."""
    with tempfile.TemporaryDirectory(prefix="bench-metrics-") as home:
        try:
            return _measure(Path(home))
        except BenchError as exc:
            print(f"bench: section metrics FAILED: {exc}", file=sys.stderr)
            return 1


def _measure(home: Path) -> int:
    metrics_dir = home / "metrics"
    port = free_port()
    env = base_environment() | {
        "SQLITE_PATH": str(home / "db.sqlite3"),
        "DJANGO_SECRET_KEY": secrets.token_urlsafe(32),
        "DJANGO_DEBUG": "false",
        "DJANGO_ALLOWED_HOSTS": "127.0.0.1",
        "PROMETHEUS_MULTIPROC_DIR": str(metrics_dir),
        "ACCESS_LOG_LEVEL": "WARNING",
        "GUNICORN_LOG_LEVEL": "error",
    }
    env.pop("OTEL_EXPORTER_OTLP_ENDPOINT", None)
    command = [
        sys.executable, "-m", "gunicorn", "--config", str(BASE_DIR / "deploy" / "gunicorn.conf.py"),
        "--workers", "2", "--max-requests", "1", "--max-requests-jitter", "0", "--preload",
        "--bind", f"{HOST}:{port}", "loadtests.bench.warm_wsgi:application",
    ]  # fmt: skip
    log_path = home / "gunicorn.log"
    with log_path.open("wb") as log:
        popen = subprocess.Popen(
            command, cwd=BASE_DIR, env=env, stdout=log, stderr=subprocess.STDOUT,
            start_new_session=True,
        )  # fmt: skip
    try:
        wait_until(lambda: port_open(HOST, port), 60, "gunicorn for the metrics section")
        # The series the scrape will carry, before any timing.
        for _ in range(4):
            _get(port, "/healthz")
        before, _ = _time_scrapes(port)
        shutil.copytree(metrics_dir, home / "floor")
        start_total = _healthz_total(_get(port, "/metrics")[1])
        started = time.perf_counter()
        with ThreadPoolExecutor(4) as pool:
            statuses = list(pool.map(lambda _: _get(port, "/healthz")[0], range(RECYCLES)))
        recycle_seconds = time.perf_counter() - started
        if statuses != [200] * RECYCLES:
            raise BenchError(f"{RECYCLES - statuses.count(200)} of the requests failed")
        after, body = _time_scrapes(port)
        shutil.copytree(metrics_dir, home / "after")
        total = _healthz_total(body)
        files = list(metrics_dir.glob("*.db"))
        size_kb = sum(f.stat().st_size for f in files) / 1024
    finally:
        os.killpg(popen.pid, 15)
        popen.wait(30)
    render_floor, render_after = _time_renders(home / "floor"), _time_renders(home / "after")
    exact = total == start_total + RECYCLES
    # Each scrape is a request too, so recycles = the /healthz requests + every scrape.
    recycled = RECYCLES + 2 * SCRAPES + 1 + 4
    print()
    print(
        f"/metrics scrape after worker recycles (gunicorn -w 2 --max-requests 1, {SCRAPES} scrapes)"
    )
    b50, a50, a99 = statistics.median(before), statistics.median(after), _p(after, 0.99)
    print(f"  fresh server (floor)            median {b50:7.2f} ms  p99 {_p(before, 0.99):7.2f} ms")
    print(
        f"  after {recycled:,} recycles           median {a50:7.2f} ms  p99 {a99:7.2f} ms"
        f"  ×{a50 / b50:.2f} of floor  (each scrape is a freshly forked worker's first request)"
    )
    print(
        f"  render only, fresh server      median {render_floor:7.2f} ms"
        f"  (the view's work on a copy of the directory, no fork or HTTP)"
    )
    print(
        f"  render only, after recycles    median {render_after:7.2f} ms"
        f"  ×{render_after / render_floor:.2f} of floor  "
        f"(goal ≤ {GOAL_MS:.0f} ms: {'met' if render_after <= GOAL_MS else 'MISSED'})"
    )
    print(
        f"  directory: {len(files)} files, {size_kb:.0f} KiB; /healthz total "
        f"{total:.0f} ({'exact' if exact else f'expected {start_total + RECYCLES:.0f}'}); "
        f"{RECYCLES / recycle_seconds:.0f} recycles/s"
    )
    return 0 if exact else 1
