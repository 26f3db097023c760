"""``/metrics`` scrape time after 1,000 gunicorn worker recycles (goal: at most 50 ms).

Run by ``python -m loadtests.bench --section metrics`` (and by ``make bench``); about a
minute and a half on 2 cores. One gunicorn server with deploy/gunicorn.conf.py's hooks
(its ``child_exit`` folds each dead worker's files into the archives), 2 workers and
``--max-requests 1``: every ``/healthz`` request ends its worker, so each one is a
recycle and a fold, exactly as ``--max-requests`` ends workers in production. Two
bench-only hooks are added in a generated config file:

- ``pre_request`` leaves ``/metrics`` requests out of the request count, so scrapes do
  not recycle their worker and are answered as a scrape of a production server is, by
  a worker that has already served requests;
- ``worker_exit`` ends the worker with ``os._exit`` after gunicorn's own exit work,
  skipping the interpreter's teardown of the preloaded Django (about 0.4 s of CPU per
  worker here), which writes nothing to the metrics directory.

The app is preloaded, so that a fork costs milliseconds instead of a Django start-up.

The scrape time is measured from a client (connect, request, whole body) over several
scrapes, on the fresh server (the floor) and again after the recycles, once the
replacement workers are up; each set's first scrapes reach workers that have not
served yet, so ``max`` includes a worker's first request. The section also checks that
the totals stayed exact and that the directory holds no dead worker's file, and fails
(status 1) when either does not hold.
"""

from __future__ import annotations

import contextlib
import http.client
import os
import re
import secrets
import statistics
import subprocess
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from deploy.local.processes import free_port, port_open, wait_until
from loadtests.bench.errors import BenchError
from loadtests.bench.site import BASE_DIR, base_environment

HOST = "127.0.0.1"
WORKERS = 2
RECYCLES = 1_000
WARM_UP = 4
SCRAPES = 20
GOAL_MS = 50.0
HEALTHZ_SAMPLE = 'http_requests_total{endpoint="/healthz",method="GET",status="200"}'
PID_FILE_RE = re.compile(r"_(\d+)\.db$")

# deploy/gunicorn.conf.py plus the two bench hooks described in the module docstring.
_CONFIG = """\
import os
import runpy

globals().update(
    (name, value)
    for name, value in runpy.run_path({deploy!r}).items()
    if not name.startswith("__")
)
_deploy_child_exit = child_exit


def pre_request(worker, req):
    if req.path == "/metrics":
        worker.nr -= 1


def worker_exit(server, worker):
    os._exit(0)


def child_exit(server, worker):
    _deploy_child_exit(server, worker)
    with open({exits!r}, "a") as exits:
        exits.write(f"{{worker.pid}}\\n")
"""


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
    """Return the client-side duration of SCRAPES scrapes in ms, and the last body."""
    times, body = [], b""
    for _ in range(SCRAPES):
        started = time.perf_counter()
        status, body = _get(port, "/metrics")
        times.append((time.perf_counter() - started) * 1000)
        if status != 200:
            raise BenchError(f"/metrics answered {status}")
    return times, body


def _live_workers(master: int) -> set[int]:
    """Return the pids of ``master``'s children that are running (not zombies)."""
    children = set()
    for stat in Path("/proc").glob("[0-9]*/stat"):
        with contextlib.suppress(OSError, IndexError, ValueError):
            fields = stat.read_text().rsplit(")", 1)[1].split()
            if int(fields[1]) == master and fields[0] != "Z":
                children.add(int(stat.parent.name))
    return children


def _wait_for_workers(master: int) -> None:
    """Wait until every worker slot holds a running, booted worker."""
    wait_until(lambda: len(_live_workers(master)) == WORKERS, 30, "replacement workers")
    # A forked worker is serving within milliseconds (the app is preloaded).
    time.sleep(0.2)


def _healthz_total(body: bytes) -> float:
    for line in body.decode().splitlines():
        if line.startswith(HEALTHZ_SAMPLE + " "):
            return float(line.rsplit(" ", 1)[1])
    return 0.0


def _dead_files(directory: Path, master: int) -> list[str]:
    """Return the names of per-process files whose process is not a live worker."""
    alive = _live_workers(master) | {master}
    return sorted(
        path.name
        for path in directory.glob("*.db")
        if (match := PID_FILE_RE.search(path.name)) and int(match[1]) not in alive
    )


def run_section() -> int:
    """Print scrape times before and after RECYCLES recycles; return 0, or 1 on failure."""
    with tempfile.TemporaryDirectory(prefix="bench-metrics-") as home:
        try:
            return _measure(Path(home))
        except BenchError as exc:
            print(f"bench: section metrics FAILED: {exc}", file=sys.stderr)
            return 1


def _measure(home: Path) -> int:
    metrics_dir, exits = home / "metrics", home / "exits.log"
    config = home / "gunicorn.conf.py"
    deploy = BASE_DIR / "deploy" / "gunicorn.conf.py"
    config.write_text(_CONFIG.format(deploy=str(deploy), exits=str(exits)))
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
        sys.executable, "-m", "gunicorn", "--config", str(config),
        "--workers", str(WORKERS), "--max-requests", "1", "--max-requests-jitter", "0",
        "--preload", "--bind", f"{HOST}:{port}", "loadtests.bench.warm_wsgi:application",
    ]  # fmt: skip
    log_path = home / "gunicorn.log"
    with log_path.open("wb") as log:
        popen = subprocess.Popen(
            command, cwd=BASE_DIR, env=env, stdout=log, stderr=subprocess.STDOUT,
            start_new_session=True,
        )  # fmt: skip
    try:
        wait_until(lambda: port_open(HOST, port), 60, "gunicorn for the metrics section")
        # The series the scrapes will carry, before any timing.
        for _ in range(WARM_UP):
            _get(port, "/healthz")
        _wait_for_workers(popen.pid)
        before, body = _time_scrapes(port)
        start_total = _healthz_total(body)
        started = time.perf_counter()
        with ThreadPoolExecutor(4) as pool:
            statuses = list(pool.map(lambda _: _get(port, "/healthz")[0], range(RECYCLES)))
        recycle_seconds = time.perf_counter() - started
        if statuses != [200] * RECYCLES:
            raise BenchError(f"{RECYCLES - statuses.count(200)} of the requests failed")
        _wait_for_workers(popen.pid)
        after, body = _time_scrapes(port)
        total = _healthz_total(body)
        recycled = len(exits.read_text().splitlines())
        files = list(metrics_dir.glob("*.db"))
        size_kib = sum(f.stat().st_size for f in files) / 1024
        dead = _dead_files(metrics_dir, popen.pid)
    except BenchError:
        print(log_path.read_text(errors="replace")[-2000:], file=sys.stderr)
        raise
    finally:
        os.killpg(popen.pid, 15)
        popen.wait(30)
    exact = total == start_total + RECYCLES
    _report(before, after, recycled, recycle_seconds)
    print(
        f"  directory: {len(files)} files, {size_kib:.0f} KiB, "
        f"{'no dead worker file' if not dead else f'DEAD WORKER FILES {dead}'}; "
        f"/healthz total {total:.0f} "
        f"({'exact' if exact else f'expected {start_total + RECYCLES:.0f}'})"
    )
    return 0 if exact and not dead else 1


def _report(before: list[float], after: list[float], recycled: int, seconds: float) -> None:
    b50, a50 = statistics.median(before), statistics.median(after)
    print()
    print(
        f"/metrics scrape from a client after worker recycles "
        f"(gunicorn -w {WORKERS} --max-requests 1, {SCRAPES} scrapes each)"
    )
    print(f"  fresh server (floor)   p50 {b50:7.2f} ms  max {max(before):7.2f} ms")
    print(
        f"  after {recycled:,} recycles  p50 {a50:7.2f} ms  max {max(after):7.2f} ms"
        f"  ×{a50 / b50:.2f} of floor  "
        f"(goal p50 ≤ {GOAL_MS:.0f} ms: {'met' if a50 <= GOAL_MS else 'MISSED'})"
    )
    print(f"  recycling: {RECYCLES:,} requests in {seconds:.0f} s ({RECYCLES / seconds:.0f}/s)")
