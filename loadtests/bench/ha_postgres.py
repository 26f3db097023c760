"""Patroni PostgreSQL in the bench: what ``synchronous_mode`` costs, and failover windows.

One durable Patroni cluster (fsync on, 2 nodes, 3 etcd members, HAProxy) is started;
the rounds alternate asynchronous and synchronous mode on it (switched at run time
through Patroni's PATCH /config), so both modes see the same machine, data and load.
Each round times single-row autocommit INSERTs through HAProxy's primary port
(psycopg), and the app's ``order_create`` in a Django process on the same port.
Then a planned switchover and a SIGKILL of the leader are each timed until a write
through HAProxy, and one through the multi-host URL, succeeds again.
"""

from __future__ import annotations

import json
import statistics
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Callable

import psycopg

from apps.core.db.settings import primary_url
from deploy.local.patroni import PatroniCluster, PatroniSettings, running
from deploy.local.processes import ServerError, free_port, scratch_dir
from loadtests.bench.errors import BenchError
from loadtests.bench.options import BenchOptions
from loadtests.bench.site import BASE_DIR, base_environment, manage, production_settings

ROUNDS = 2
COMMITS = 400
ORDERS = 150
# A failover that has not ended by then is a failure of the section.
WINDOW_LIMIT = 120.0
# After a switchover returns, writes that have not failed by then never will.
SETTLE_SECONDS = 3.0
MODES = {False: "async", True: "sync"}


def section(options: BenchOptions) -> int:
    """Measure and print the section (it takes no wrk option); 1 when it cannot run."""
    try:
        results = measure()
    except (BenchError, ServerError, OSError, psycopg.Error, subprocess.SubprocessError) as exc:
        print(f"ha-postgres: could not measure: {exc}", file=sys.stderr)
        return 1
    samples, windows, settings = results
    print("ha-postgres: Patroni synchronous_mode vs async, same cluster (fsync on, HAProxy)")
    for kind in ("commit", "order"):
        print(line(kind, samples[False][kind], samples[True][kind]))
    print(
        f"ha-postgres: seconds without writes (a write every 50 ms; ttl {settings.ttl} s, "
        f"loop_wait {settings.loop_wait} s, synchronous_mode on)"
    )
    goals = {"switchover": 3.0, "leader kill": float(settings.ttl + 5)}
    for fault, (proxy, multi_host) in windows.items():
        verdict = "met" if max(proxy, multi_host) <= goals[fault] else "MISSED"
        print(
            f"  {fault:<11} via HAProxy {proxy:6.2f} s | via multi-host URL {multi_host:6.2f} s"
            f" | goal <= {goals[fault]:.0f} s ({verdict})"
        )
    return 0


Samples = dict[bool, dict[str, list[float]]]


def measure() -> tuple[Samples, dict[str, tuple[float, float]], PatroniSettings]:
    """Return per-mode latency samples (seconds) of commits and orders, and the write
    windows (HAProxy, multi-host) of a switchover and of a leader kill."""
    samples: Samples = {mode: {"commit": [], "order": []} for mode in MODES}
    with running(scratch_dir("highscale-bench-ha-"), durable=True) as cluster:
        env = app_environment(cluster)
        manage(env, "migrate", "--noinput", "-v", "0")
        for _ in range(ROUNDS):
            for mode in MODES:
                cluster.set_synchronous_mode(mode)
                samples[mode]["commit"] += commit_latencies(cluster, COMMITS)
                samples[mode]["order"] += order_latencies(env, ORDERS)
        windows = {"switchover": write_windows(cluster, cluster.switchover)}
        cluster.wait_healthy()
        windows["leader kill"] = write_windows(cluster, cluster.kill_leader)
        return samples, windows, cluster.settings


def write_windows(cluster: PatroniCluster, fault: Callable[[], object]) -> tuple[float, float]:
    """Return how long writes failed around ``fault``, through HAProxy and through the
    multi-host URL: from the last write that succeeded before the first failure to the
    first that succeeded after it (0 when none failed)."""
    probes = [WriteProbe(cluster.primary_url), WriteProbe(primary_url(cluster.multi_host_url))]
    for probe in probes:
        probe.start()
    try:
        time.sleep(1.0)
        fault()
        deadline = time.monotonic() + WINDOW_LIMIT
        settled = time.monotonic() + SETTLE_SECONDS
        while time.monotonic() < deadline:
            if all(p.recovered() for p in probes) or (
                time.monotonic() > settled and not any(p.failed() for p in probes)
            ):
                break
            time.sleep(0.1)
        else:
            raise BenchError(f"writes did not come back within {WINDOW_LIMIT:.0f} s")
    finally:
        for probe in probes:
            probe.halt()
    return probes[0].window(), probes[1].window()


class WriteProbe(threading.Thread):
    """Write through ``url`` every 50 ms, each on a new connection; keep the outcomes."""

    def __init__(self, url: str) -> None:
        super().__init__(daemon=True)
        self.url = url
        self.outcomes: list[tuple[float, bool]] = []
        self._halted = threading.Event()

    def run(self) -> None:
        while not self._halted.is_set():
            self.outcomes.append((time.monotonic(), _writes(self.url)))
            self._halted.wait(0.05)

    def halt(self) -> None:
        self._halted.set()
        self.join(10)

    def failed(self) -> bool:
        return any(not ok for _, ok in list(self.outcomes))

    def recovered(self) -> bool:
        outcomes = list(self.outcomes)
        first = next((i for i, (_, ok) in enumerate(outcomes) if not ok), None)
        return first is not None and any(ok for _, ok in outcomes[first:])

    def window(self) -> float:
        outcomes = list(self.outcomes)
        first = next((i for i, (_, ok) in enumerate(outcomes) if not ok), None)
        if first is None:
            return 0.0
        before = outcomes[first - 1][0] if first else outcomes[0][0]
        after = next(t for t, ok in outcomes[first:] if ok)
        return after - before


def _writes(url: str) -> bool:
    try:
        with psycopg.connect(url, autocommit=True, connect_timeout=2) as conn:
            conn.execute("SET statement_timeout = 2000")
            conn.execute("INSERT INTO bench_commit (note) VALUES ('window')")
    except psycopg.Error:
        return False
    return True


def app_environment(cluster: PatroniCluster) -> dict[str, str]:
    """Return a production-mode app environment on the cluster's HAProxy primary port."""
    env = {**base_environment(), **production_settings()}
    env["DATABASE_URL"] = cluster.primary_url
    # Unreachable on purpose: see loadtests/bench/ha_orders.py.
    env["CELERY_BROKER_URL"] = f"amqp://guest:guest@127.0.0.1:{free_port()}//"
    env["LOG_LEVEL"] = "ERROR"
    return env


def commit_latencies(cluster: PatroniCluster, count: int) -> list[float]:
    """Time ``count`` single-row autocommit INSERTs through HAProxy's primary port."""
    with psycopg.connect(cluster.primary_url, autocommit=True) as conn:
        conn.execute("CREATE TABLE IF NOT EXISTS bench_commit (id bigserial, note text)")
        note = uuid.uuid4().hex
        latencies = []
        for _ in range(count):
            started = time.perf_counter()
            conn.execute("INSERT INTO bench_commit (note) VALUES (%s)", [note])
            latencies.append(time.perf_counter() - started)
    return latencies


def order_latencies(env: dict[str, str], count: int) -> list[float]:
    """Time ``count`` orders placed by the app's service in a Django process."""
    result = subprocess.run(
        [sys.executable, "-m", "loadtests.bench.ha_orders", str(count)],
        cwd=BASE_DIR, env=env, capture_output=True, text=True, check=False, timeout=600,
    )  # fmt: skip
    if result.returncode != 0:
        raise BenchError(f"ha_orders failed:\n{result.stderr[-2000:]}")
    latencies: list[float] = json.loads(result.stdout.strip().splitlines()[-1])
    return latencies


def line(kind: str, async_samples: list[float], sync_samples: list[float]) -> str:
    """Return one printed line: both medians and p95s, the ratio and the added time."""
    a50, s50 = statistics.median(async_samples), statistics.median(sync_samples)
    a95, s95 = _p95(async_samples), _p95(sync_samples)
    return (
        f"  per {kind:<6} async p50 {a50 * 1000:7.3f} ms p95 {a95 * 1000:7.3f} ms | "
        f"sync p50 {s50 * 1000:7.3f} ms p95 {s95 * 1000:7.3f} ms | "
        f"sync/async p50 {s50 / a50:4.2f}x ({(s50 - a50) * 1000:+.3f} ms), "
        f"n={len(sync_samples)} each"
    )


def _p95(samples: list[float]) -> float:
    return statistics.quantiles(samples, n=20)[-1]
