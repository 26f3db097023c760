"""The events section of the bench: order placement throughput and commit-to-confirmed latency.

Runs on a private PostgreSQL and the local RabbitMQ (a private node when none runs), with
queues under a prefix of its own, all removed at the end:

1. Throughput: wrk POSTs ``/api/v1/orders`` (token auth, a fresh ``Idempotency-Key`` per
   request, ``orders.lua``) to gunicorn; each order commits its outbox event and publishes
   it with publisher confirms. Printed as a ratio to the bare WSGI floor measured in the
   same run (goal >= 0.25). No worker runs meanwhile, so the two do not share the CPUs.
2. Latency: a real Celery worker consumes while orders arrive at a steady rate; for each
   order the database holds ``created_at`` (set in the placing transaction) and
   ``updated_at`` (set by ``reserve_inventory`` in the transaction that confirms it).
   Printed as p50/p99 and p99 over the goal of 1 s.

    .venv/bin/python -m loadtests.bench --section events
"""

from __future__ import annotations

import contextlib
import http.client
import json
import os
import secrets
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from collections import Counter
from collections.abc import Mapping
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from loadtests.bench import cpu
from loadtests.bench.errors import BenchError
from loadtests.bench.gunicorn import GunicornServer, start_gunicorn
from loadtests.bench.site import BASE_DIR, base_environment, manage
from loadtests.bench.wrk import WrkResult, find_wrk, parse_wrk

SCRIPT = Path(__file__).with_name("orders.lua")
WORKERS = 2
CONNECTIONS = 16
DURATION_SECONDS = 5
ROUNDS = 2
RATE_PER_SECOND = 50
LATENCY_SECONDS = 10
THROUGHPUT_GOAL = 0.25
P99_GOAL_SECONDS = 1.0
SETTLE_TIMEOUT = 120.0
# The names RabbitMQ's processes run under: the Erlang VM and its helpers.
RABBITMQ_PROCESSES = ("beam.smp", "erl_child_setup", "epmd", "inet_gethost")
# One worker, tuned as for the fast queue (README "Events and queues"): a few messages
# prefetched per process keep the pool busy instead of waiting a broker round trip
# between tasks. One process per core: with the web server on the same two cores, four
# processes measured slower (p50 1.8-2.6 s against 1.3 s at 50 orders/s).
WORKER_CONCURRENCY = 2
WORKER_PREFETCH_MULTIPLIER = 4
WORKER_OPTIONS = [
    "--concurrency", str(WORKER_CONCURRENCY),
    "--prefetch-multiplier", str(WORKER_PREFETCH_MULTIPLIER),
]  # fmt: skip

_SETUP = """
from apps.orders.models import Product
from apps.users.models import User
from apps.users.services import token_create
User.objects.create_user("bench", "bench@example.com", "bench-pass-123")
product = Product.objects.create(sku="BENCH-1", name="Bench", price="1.00", stock=10**9)
print(product.pk, token_create(username="bench", password="bench-pass-123"))
"""


def section() -> int:
    """Measure and print both lines; return 0, or 1 when a measurement failed."""
    from tests.servers import Servers, broker_url_or_start

    with contextlib.ExitStack() as stack:
        workdir = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="highscale-ev-")))
        # Its own scratch directory, which the PostgreSQL server user can enter.
        servers = Servers()
        stack.callback(servers.stop)
        _progress("starting    PostgreSQL and RabbitMQ")
        env = _environment(servers.start_postgres("events-pg"), broker_url_or_start(servers))
        stack.callback(_delete_queues, env)
        manage(env, "migrate", "--noinput")
        product_id, token = manage(env, "shell", "-c", _SETUP).split()[-2:]

        bare = _serve(stack, "bare", "loadtests.bench.bare_wsgi:application", env, workdir)
        web = _serve(stack, "orders", "config.wsgi:application", env, workdir)
        bare.wait_ready("/")
        web.wait_ready("/healthz")
        floor, placed = _throughput(bare, web, product_id, token)
        _purge_queues(env)
        worker = _start_worker(stack, env, workdir)
        latencies = _latencies(web, env, product_id, token, worker)
    return _print(floor, placed, latencies)


def _environment(database_url: str, broker_url: str) -> dict[str, str]:
    import psycopg

    with psycopg.connect(database_url.rsplit("/", 1)[0] + "/postgres", autocommit=True) as conn:
        conn.execute("CREATE DATABASE highscale")
    return base_environment() | {
        "DJANGO_SETTINGS_MODULE": "config.settings",
        "DJANGO_DEBUG": "false",
        "DJANGO_SECRET_KEY": secrets.token_urlsafe(50),
        "DJANGO_ALLOWED_HOSTS": "127.0.0.1,localhost",
        "DJANGO_EMAIL_BACKEND": "django.core.mail.backends.locmem.EmailBackend",
        "LOG_LEVEL": "WARNING",
        "DATABASE_URL": database_url,
        "CELERY_BROKER_URL": broker_url,
        "EVENTS_QUEUE_PREFIX": f"bench{os.getpid()}",
        "RATELIMIT_OVERRIDES": "api=1000000000/60",
    }


def _serve(
    stack: contextlib.ExitStack, name: str, app: str, env: dict[str, str], workdir: Path
) -> GunicornServer:
    home = workdir / name
    home.mkdir()
    server = start_gunicorn(target=name, app=app, workers=WORKERS, env=env, workdir=home)
    stack.callback(server.stop)
    return server


def _wrk(url: str, seconds: int, script_args: list[str] | None = None) -> WrkResult:
    # A 10 s timeout: on a busy box a slow order is measured, not counted as an error.
    command = [find_wrk(), "-t2", f"-c{CONNECTIONS}", f"-d{seconds}s", "--timeout", "10s"]
    command.append("--latency")
    if script_args is not None:
        command += ["-s", str(SCRIPT), url, "--", *script_args]
    else:
        command.append(url)
    result = subprocess.run(command, capture_output=True, text=True, check=False)
    if result.returncode != 0:
        raise BenchError(f"wrk failed on {url} ({result.returncode}):\n{result.stderr}")
    parsed = parse_wrk(result.stdout)
    if parsed.problems():
        raise BenchError(f"{url}: {'; '.join(parsed.problems())}")
    return parsed


@dataclass(frozen=True)
class OrderPlacement:
    """Order placement's wrk rounds, and the CPU seconds each part of the machine spent."""

    rounds: list[WrkResult]
    cpu_seconds: dict[str, float]

    def cpu_ms_per_order(self) -> dict[str, float]:
        orders = sum(r.requests for r in self.rounds)
        return {name: s * 1000 / orders for name, s in self.cpu_seconds.items()}


def _throughput(
    bare: GunicornServer, web: GunicornServer, product_id: str, token: str
) -> tuple[list[WrkResult], OrderPlacement]:
    """Return the floor's and order placement's wrk rounds, run alternately."""
    runs = {"place": 0}
    groups = {
        "web": cpu.process_tree(web.popen.pid),
        "PostgreSQL": cpu.named("postgres"),
        "RabbitMQ": cpu.named(*RABBITMQ_PROCESSES),
        "wrk": cpu.named("wrk"),
    }
    cpu_seconds: Counter[str] = Counter()

    def place(seconds: int, *, measured: bool = True) -> WrkResult:
        runs["place"] += 1
        args = [product_id, token, f"k{runs['place']}"]
        before = cpu.snapshot()
        result = _wrk(web.base_url + "/api/v1/orders", seconds, args)
        if measured:
            cpu_seconds.update(cpu.spent(before, cpu.snapshot(), groups))
        return result

    _progress("warm-up     bare WSGI floor, order placement")
    _wrk(bare.base_url + "/", 1)
    place(1, measured=False)
    floor: list[WrkResult] = []
    placed: list[WrkResult] = []
    for number in range(1, ROUNDS + 1):
        # Alternate which runs first, so a drift in the machine's speed hits both alike.
        for first in (True, False) if number % 2 else (False, True):
            if first:
                floor.append(_wrk(bare.base_url + "/", DURATION_SECONDS))
            else:
                placed.append(place(DURATION_SECONDS))
        _progress(
            f"round {number}/{ROUNDS}   floor {floor[-1].requests_per_second:.0f} req/s, "
            f"orders {placed[-1].requests_per_second:.0f} req/s"
        )
    return floor, OrderPlacement(placed, dict(cpu_seconds))


def _start_worker(
    stack: contextlib.ExitStack, env: dict[str, str], workdir: Path
) -> subprocess.Popen[bytes]:
    log_path = workdir / "worker.log"
    log = stack.enter_context(log_path.open("wb"))
    worker = subprocess.Popen(
        [
            sys.executable, "-m", "celery", "-A", "config", "worker", "--pool", "prefork",
            *WORKER_OPTIONS, "--loglevel", "INFO",
            "--without-gossip", "--without-mingle", "--without-heartbeat",
            "--hostname", f"bench{os.getpid()}@localhost",
        ],
        cwd=BASE_DIR,
        env=env | {"LOG_LEVEL": "INFO"},
        stdout=log,
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )  # fmt: skip
    stack.callback(_stop_worker, worker)
    deadline = time.monotonic() + 60
    while " ready." not in log_path.read_text(errors="replace"):
        if worker.poll() is not None or time.monotonic() > deadline:
            raise BenchError(f"the celery worker did not start:\n{log_path.read_text()[-2000:]}")
        time.sleep(0.2)
    return worker


def _stop_worker(worker: subprocess.Popen[bytes]) -> None:
    with contextlib.suppress(ProcessLookupError):
        os.killpg(worker.pid, signal.SIGTERM)
    try:
        worker.wait(20)
    except subprocess.TimeoutExpired:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(worker.pid, signal.SIGKILL)
        worker.wait(5)


def _latencies(
    web: GunicornServer,
    env: dict[str, str],
    product_id: str,
    token: str,
    worker: subprocess.Popen[bytes],
) -> list[float]:
    """Place orders at RATE_PER_SECOND; return each one's seconds from commit to confirmed."""
    count = RATE_PER_SECOND * LATENCY_SECONDS
    body = json.dumps({"items": [{"product_id": int(product_id), "quantity": 1}]})
    _progress(f"latency     {count} orders at {RATE_PER_SECOND}/s with a celery worker")

    def place(number: int) -> int:
        connection = http.client.HTTPConnection("127.0.0.1", web.port, timeout=30)
        try:
            connection.request(
                "POST",
                "/api/v1/orders",
                body,
                {
                    "Content-Type": "application/json",
                    "Authorization": f"Token {token}",
                    "Idempotency-Key": f"latency-{number}",
                },
            )
            response = connection.getresponse()
            payload = response.read()
        finally:
            connection.close()
        if response.status != 201:
            raise BenchError(f"POST /api/v1/orders answered {response.status}: {payload[:300]!r}")
        order_id: int = json.loads(payload)["id"]
        return order_id

    started = time.monotonic()
    with ThreadPoolExecutor(max_workers=16) as pool:
        futures = []
        for number in range(count):
            # A steady rate: each order leaves at its own slot, not as fast as possible.
            time.sleep(max(0.0, started + number / RATE_PER_SECOND - time.monotonic()))
            futures.append(pool.submit(place, number))
        order_ids = [future.result() for future in futures]
    return _settled_latencies(env["DATABASE_URL"], order_ids, worker)


def _settled_latencies(
    database_url: str, order_ids: list[int], worker: subprocess.Popen[bytes]
) -> list[float]:
    import psycopg

    deadline = time.monotonic() + SETTLE_TIMEOUT
    with psycopg.connect(database_url, autocommit=True) as conn:
        while True:
            row = conn.execute(
                "SELECT count(*) FROM orders_order WHERE id = ANY(%s) AND status = 'pending'",
                [order_ids],
            ).fetchone()
            if row is not None and row[0] == 0:
                break
            if worker.poll() is not None or time.monotonic() > deadline:
                raise BenchError(f"{row[0] if row else '?'} orders still pending")
            time.sleep(0.2)
        rows: list[Any] = conn.execute(
            "SELECT status, extract(epoch FROM updated_at - created_at)::float8 "
            "FROM orders_order WHERE id = ANY(%s)",
            [order_ids],
        ).fetchall()
    statuses = {status for status, _ in rows}
    if statuses != {"confirmed"}:
        raise BenchError(f"expected every order confirmed, got statuses {sorted(statuses)}")
    return [float(seconds) for _, seconds in rows]


def _purge_queues(env: dict[str, str]) -> None:
    """Drop the throughput run's messages, so the latency run does not queue behind them."""
    _each_queue(env, "queue_purge")


def _delete_queues(env: dict[str, str]) -> None:
    _each_queue(env, "queue_delete")


def _each_queue(env: dict[str, str], method: str) -> None:
    from kombu import Connection

    prefix = env["EVENTS_QUEUE_PREFIX"]
    with Connection(env["CELERY_BROKER_URL"]) as conn:
        for suffix in ("default", "orders", "webhooks", "dead"):
            channel: Any = conn.channel()
            with contextlib.suppress(Exception):
                getattr(channel, method)(f"{prefix}.{suffix}")
            with contextlib.suppress(Exception):
                channel.close()
        if method == "queue_delete":
            channel = conn.channel()
            for exchange in (prefix, f"{prefix}.dlx"):
                with contextlib.suppress(Exception):
                    channel.exchange_delete(exchange)


def _print(floor: list[WrkResult], placement: OrderPlacement, latencies: list[float]) -> int:
    placed = placement.rounds
    floor_rps = statistics.fmean(r.requests_per_second for r in floor)
    placed_rps = statistics.fmean(r.requests_per_second for r in placed)
    ratio = placed_rps / floor_rps
    p50_ms = statistics.fmean(r.p50_ms for r in placed)
    p99_ms = statistics.fmean(r.p99_ms for r in placed)
    cuts = statistics.quantiles(latencies, n=100, method="inclusive")
    p50, p99 = statistics.median(latencies), cuts[98]
    print()
    print(f"events: POST /api/v1/orders (token, Idempotency-Key, PostgreSQL, outbox + "
          f"RabbitMQ confirms), gunicorn -w {WORKERS}, wrk -t2 -c{CONNECTIONS}, "
          f"{ROUNDS} x {DURATION_SECONDS} s")  # fmt: skip
    throughput_goal = "met" if ratio >= THROUGHPUT_GOAL else "MISSED"
    latency_goal = "met" if p99 <= P99_GOAL_SECONDS else "MISSED"
    print(f"  order placement  {placed_rps:7.0f} req/s  p50 {p50_ms:5.1f} ms  "
          f"p99 {p99_ms:5.1f} ms  ratio {ratio:.2f} to the floor ({floor_rps:.0f} req/s)  "
          f"goal >= {THROUGHPUT_GOAL:.2f}: {throughput_goal}")  # fmt: skip
    cores = len(os.sched_getaffinity(0))
    for line in cpu_lines(placement.cpu_ms_per_order(), floor_rps, cores):
        print(line)
    print(f"  commit -> confirmed, {len(latencies)} orders at {RATE_PER_SECOND}/s, one worker "
          f"(prefork {WORKER_CONCURRENCY}, prefetch x{WORKER_PREFETCH_MULTIPLIER}): "
          f"p50 {p50 * 1000:.0f} ms  p99 {p99 * 1000:.0f} ms  "
          f"p99/goal {p99 / P99_GOAL_SECONDS:.2f} (goal p99 <= {P99_GOAL_SECONDS:.0f} s: "
          f"{latency_goal})")  # fmt: skip
    return 0


def cpu_lines(per_order_ms: Mapping[str, float], floor_rps: float, cores: int) -> list[str]:
    """Return the CPU each part of the machine spent per order placed, next to the budget
    the throughput goal leaves per order, and the ceiling the database and broker alone
    put on throughput (as if the web tier cost nothing).
    """
    total = sum(per_order_ms.values())
    parts = ", ".join(f"{name} {ms:.2f}" for name, ms in per_order_ms.items())
    goal_rps = floor_rps * THROUGHPUT_GOAL
    budget = cores * 1000 / goal_rps
    servers = per_order_ms.get("PostgreSQL", 0.0) + per_order_ms.get("RabbitMQ", 0.0)
    lines = [
        f"  CPU per order placed: {total:.2f} ms on {cores} cores ({parts}; ms)",
        f"  the goal's {goal_rps:.0f} orders/s leave {budget:.2f} ms of CPU per order",
    ]
    if servers > 0:
        ceiling = cores * 1000 / servers
        lines.append(
            f"  PostgreSQL + RabbitMQ alone take {servers:.2f} ms per order: with a web tier "
            f"costing nothing, {ceiling:.0f} orders/s = ratio {ceiling / floor_rps:.2f}"
        )
    return lines


def _progress(message: str) -> None:
    print(f"  {message}", file=sys.stderr, flush=True)
