"""The ``ratelimit`` section: our limiter against the same view unlimited and against peers.

One gunicorn (sync, ``-w 4``) serves ``loadtests.bench.peer_settings`` on a private
Redis, so every figure is measured in the same run next to its peer:

- added latency: a sequential client sends the views' requests interleaved one by one
  (over 64 client keys, each well inside its quota) and compares each limited view's
  median with its unlimited twin's; once with Redis sharing the cores with gunicorn
  and the client, and once with Redis on a core of its own (``placement``), as on its
  own host in production;
- exactness: 1,000 requests with one key from 200 concurrent clients, limit 100 per
  60 s, Redis flushed before each burst; admitted counts for ours, DRF's
  ``AnonRateThrottle`` and django-ratelimit, plus django-ratelimit with the burst timed
  across its fixed window's edge.

    .venv/bin/python -m loadtests.bench --section ratelimit
"""

from __future__ import annotations

import atexit
import http.client
import math
import statistics
import sys
import tempfile
import threading
import time
import zlib
from collections import Counter
from collections.abc import Callable, Mapping
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import redis

from deploy.local.servers import Servers
from loadtests.bench import placement
from loadtests.bench.errors import BenchError
from loadtests.bench.gunicorn import start_gunicorn
from loadtests.bench.options import BenchOptions
from loadtests.bench.site import base_environment, prepare_django

HOST = "127.0.0.1"

PEER_SETTINGS = "loadtests.bench.peer_settings"
PREFIX = "/bench/ratelimit/"
LIMIT = 100
WINDOW = 60
# Ours may add at most this share of the fastest peer's added p50.
PEER_RATIO_GOAL = 0.5
# Client keys the latency run spreads over; each sees requests/64 hits, inside its quota.
LATENCY_KEYS = 64
# How long before django-ratelimit's window edge the edge burst starts.
EDGE_LEAD_SECONDS = 0.4


@dataclass(frozen=True)
class View:
    """One peer view: its report label, its path, and its unlimited twin."""

    label: str
    path: str
    baseline: str | None = None


PLAIN = View("plain Django view, unlimited", "plain")
DRF_PLAIN = View("DRF APIView, unlimited", "drf-plain")
LATENCY_VIEWS = (
    PLAIN,
    View("+ ours: decorator, sliding window", "ours", "plain"),
    View("+ ours: decorator, GCRA", "ours-gcra", "plain"),
    View("+ django-ratelimit 4.1 (django-redis)", "django-ratelimit", "plain"),
    DRF_PLAIN,
    View("+ ours: DRF throttle, sliding window", "drf-ours", "drf-plain"),
    View("+ DRF AnonRateThrottle (django-redis)", "drf-throttle", "drf-plain"),
)


@dataclass(frozen=True)
class Burst:
    """One exactness burst: the view, the statuses that mean refused, and its bound."""

    label: str
    path: str
    refused: int = 429
    # GCRA refills one request per window/limit while the burst runs.
    refills: bool = False
    # Start just before django-ratelimit's fixed window edge for the burst's key.
    across_edge: bool = False


# Whose added p50 is set against the fastest peer's: ours on the contract's algorithm.
OURS = ("ours", "drf-ours")
PEERS = ("django-ratelimit", "drf-throttle")

BURSTS = (
    Burst("ours: decorator, sliding window", "ours"),
    Burst("ours: DRF throttle, sliding window", "drf-ours"),
    Burst("ours: decorator, GCRA (burst 100, refills)", "ours-gcra", refills=True),
    Burst("DRF AnonRateThrottle (django-redis)", "drf-throttle"),
    Burst("django-ratelimit (django-redis), 403", "django-ratelimit", refused=403),
    Burst(
        "django-ratelimit, burst across its window edge",
        "django-ratelimit",
        refused=403,
        across_edge=True,
    ),
)


@dataclass(frozen=True)
class BurstResult:
    burst: Burst
    limit: int
    admitted: int
    refused: int
    seconds: float

    @property
    def allowed(self) -> int:
        """Return how many the policy may admit: the limit, plus GCRA's refill."""
        refill = math.floor(self.seconds * self.limit / WINDOW) if self.burst.refills else 0
        return self.limit + refill

    @property
    def over_admitted(self) -> int:
        return max(0, self.admitted - self.allowed)


def prepare_peers(workdir: Path, *, limit: int) -> dict[str, str]:
    """Return the environment of a peer server without its Redis: production mode on a
    private migrated SQLite file, ``limit`` per 60 s for every limiter.
    """
    overrides = prepare_django(workdir)
    overrides["DJANGO_SETTINGS_MODULE"] = PEER_SETTINGS
    overrides["BENCH_RATELIMIT_LIMIT"] = str(limit)
    # The profile cache and the lifted API policy are not what this section measures.
    overrides["RATELIMIT_OVERRIDES"] = "api=1000000000/60"
    return overrides


def prepare_target(workdir: Path) -> dict[str, str]:
    """Prepare the ``ratelimit-peers`` wrk target: limits lifted so every request is
    admitted (and still counted), a private Redis stopped when the bench exits.
    """
    overrides = prepare_peers(workdir, limit=1_000_000_000)
    servers = Servers(root=workdir / "servers")
    (workdir / "servers").mkdir()
    atexit.register(servers.stop)
    overrides["REDIS_URL"] = servers.start_redis()
    return overrides


def get(port: int, path: str, headers: Mapping[str, str]) -> int:
    """Send one GET on a fresh connection, as gunicorn's sync workers expect; return the status."""
    connection = http.client.HTTPConnection(HOST, port, timeout=30)
    try:
        connection.request("GET", path, headers=dict(headers))
        response = connection.getresponse()
        response.read()
        return response.status
    finally:
        connection.close()


def measure_latency(port: int, requests: int) -> dict[str, float]:
    """Return each view's median latency in ms, the views' requests interleaved one by one.

    Raise BenchError when any request is not answered 200.
    """
    samples: dict[str, list[float]] = {view.path: [] for view in LATENCY_VIEWS}
    for number in range(-LATENCY_KEYS, requests):
        order = LATENCY_VIEWS if number % 2 else tuple(reversed(LATENCY_VIEWS))
        for index, view in enumerate(order):
            # Negative numbers warm every worker up on keys the measured requests never use.
            key = f"10.{index}.{1 if number < 0 else 0}.{number % LATENCY_KEYS + 1}"
            started = time.perf_counter()
            status = get(port, PREFIX + view.path, {"X-Forwarded-For": key})
            elapsed = time.perf_counter() - started
            if status != 200:
                raise BenchError(f"latency: {view.path} answered {status}, expected 200")
            if number >= 0:
                samples[view.path].append(elapsed * 1000)
    return {path: statistics.median(values) for path, values in samples.items()}


def edge_key(period: int = WINDOW) -> tuple[str, float]:
    """Return a client key whose django-ratelimit window ends one to two seconds from now,
    and the epoch time of that edge.

    django-ratelimit's window for a key ends at the seconds ``w`` with
    ``w % period == crc32(key) % period``; the next window starts at ``w + 1``.
    """
    edge = int(time.time()) + 2
    for number in range(1, 65_536):
        key = f"10.250.{number // 256}.{number % 256}"
        if (edge - 1 - zlib.crc32(key.encode())) % period == 0:
            return key, float(edge)
    raise BenchError("no client key puts django-ratelimit's window edge where needed")


def run_burst(
    port: int, burst: Burst, scenario: Scenario, *, flush: Callable[[], object]
) -> BurstResult:
    """Send the scenario's requests with one key from its clients' threads; count the answers.

    Raise BenchError on any status other than 200 or the burst's refusal.
    """
    flush()
    key = "10.251.0.1"
    if burst.across_edge:
        key, edge = edge_key()
        time.sleep(max(0.0, edge - EDGE_LEAD_SECONDS - time.time()))
    total, clients = scenario.total, scenario.clients
    per_client = math.ceil(total / clients)
    remaining = [total]
    lock = threading.Lock()

    def client(_: int) -> list[int]:
        statuses = []
        for _ in range(per_client):
            with lock:
                if remaining[0] == 0:
                    break
                remaining[0] -= 1
            statuses.append(get(port, PREFIX + burst.path, {"X-Forwarded-For": key}))
        return statuses

    started = time.perf_counter()
    with ThreadPoolExecutor(clients) as pool:
        counts = Counter(status for batch in pool.map(client, range(clients)) for status in batch)
    seconds = time.perf_counter() - started
    unexpected = {s: n for s, n in counts.items() if s not in (200, burst.refused)}
    if unexpected:
        raise BenchError(f"exactness: {burst.path} answered {unexpected}")
    return BurstResult(burst, scenario.limit, counts[200], counts[burst.refused], seconds)


@dataclass(frozen=True)
class Scenario:
    """How hard the section pushes; the defaults are the issue's exactness scenario."""

    workers: int = 4
    requests: int = 500
    total: int = 1000
    clients: int = 200
    limit: int = LIMIT


@dataclass(frozen=True)
class Latencies:
    """Each view's median latency in ms: Redis sharing the cores, and on its own core."""

    shared: dict[str, float]
    apart: dict[str, float] | None


def measure_peers(scenario: Scenario) -> tuple[Latencies, list[BurstResult]]:
    """Start the peer server on a private Redis; return the medians and the bursts' counts.

    Every server is stopped and the private directory removed, whatever happens.
    """
    with tempfile.TemporaryDirectory(prefix="highscale-bench-ratelimit-") as tmp:
        workdir = Path(tmp)
        servers = Servers(root=workdir / "servers")
        (workdir / "servers").mkdir()
        try:
            redis_url = servers.start_redis()
            env = base_environment() | prepare_peers(workdir, limit=scenario.limit)
            env["REDIS_URL"] = redis_url
            server = start_gunicorn(
                target="ratelimit-peers",
                app="config.wsgi:application",
                workers=scenario.workers,
                env=env,
                workdir=workdir,
            )
            client = redis.Redis.from_url(redis_url)
            try:
                server.wait_ready("/healthz")
                shared = measure_latency(server.port, scenario.requests)
                apart = None
                if placement.can_separate():
                    redis_pid = next(p.popen.pid for p in servers.processes if p.name == "redis")
                    with placement.redis_on_own_core(redis_pid, server.popen.pid):
                        apart = measure_latency(server.port, scenario.requests)
                results = [
                    run_burst(server.port, burst, scenario, flush=client.flushdb)
                    for burst in BURSTS
                ]
            finally:
                client.close()
                server.stop()
        finally:
            servers.stop()
    return Latencies(shared, apart), results


def latency_lines(latency: Mapping[str, float]) -> list[str]:
    """Return one line per view: its median, and what it adds to its unlimited twin."""
    width = max(len(v.label) for v in LATENCY_VIEWS) + 2
    lines = []
    for view in LATENCY_VIEWS:
        line = f"    {view.label:<{width}} p50 {latency[view.path]:6.3f} ms"
        if view.baseline is not None:
            added = latency[view.path] - latency[view.baseline]
            line += f"  added {added:+.3f} ms"
        lines.append(line)
    return lines


def section(options: BenchOptions) -> int:
    """Measure and print the section in its own scenario (it takes no wrk option)."""
    return run_section()


def added_ms(latency: Mapping[str, float], path: str) -> float:
    """Return what the view at ``path`` adds to its unlimited twin's median, in ms."""
    baseline = next(view.baseline for view in LATENCY_VIEWS if view.path == path)
    return latency[path] - latency[baseline or path]


def peer_ratio_line(latency: Mapping[str, float]) -> str:
    """Return ours' added p50 as a share of the fastest peer's, against the goal."""
    labels = {view.path: view.label.removeprefix("+ ") for view in LATENCY_VIEWS}
    fastest = min(PEERS, key=lambda path: added_ms(latency, path))
    peer_added = added_ms(latency, fastest)
    parts = []
    for path in OURS:
        if peer_added <= 0:
            parts.append(f"{labels[path]} n/a")
            continue
        share = added_ms(latency, path) / peer_added
        verdict = "met" if share <= PEER_RATIO_GOAL else "MISSED"
        parts.append(f"{labels[path]} {share:.2f} ({verdict})")
    return (
        f"    ours / fastest peer's added p50 ({labels[fastest]}, {peer_added:+.3f} ms), "
        f"goal <= {PEER_RATIO_GOAL}: " + "; ".join(parts)
    )


def run_section(scenario: Scenario | None = None, out: Callable[[str], None] = print) -> int:
    """Measure and print the section; return 0 (a failed measurement raises BenchError)."""
    scenario = scenario or Scenario()
    latency, results = measure_peers(scenario)
    for line in report(latency, results, scenario):
        out(line)
    return 0


def report(latency: Latencies, results: list[BurstResult], scenario: Scenario) -> list[str]:
    """Return the section's lines: each limited view next to its unlimited twin and peers."""
    lines = [
        "",
        f"rate limiting (gunicorn sync -w {scenario.workers}, private Redis, one server, same run)",
        f"  added latency at p50: sequential client, {scenario.requests} requests per view "
        f"interleaved one by one, {LATENCY_KEYS} client keys",
        "   Redis sharing the cores with gunicorn and the client:",
        *latency_lines(latency.shared),
        peer_ratio_line(latency.shared),
    ]
    if latency.apart is not None:
        lines += [
            "   Redis on a core of its own (pinned; gunicorn and the client on the others):",
            *latency_lines(latency.apart),
            peer_ratio_line(latency.apart),
        ]
    lines.append(
        f"  exactness: {scenario.total} requests, one key, {scenario.clients} concurrent clients, "
        f"limit {scenario.limit}/{WINDOW} s, Redis flushed before each burst"
    )
    width = max(len(r.burst.label) for r in results) + 2
    for result in results:
        lines.append(
            f"    {result.burst.label:<{width}} admitted {result.admitted:4d}  "
            f"refused {result.refused:4d}  may admit {result.allowed:3d}  "
            f"over-admitted {result.over_admitted:3d}  ({result.seconds:.2f} s)"
        )
    return lines


if __name__ == "__main__":
    sys.exit(run_section())
