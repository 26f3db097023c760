"""The events section of the bench: order placement throughput and commit-to-confirmed latency.

Runs on a private PostgreSQL and the local RabbitMQ (a private node when none runs), with
queues under a prefix of its own, all removed at the end:

1. Throughput: wrk POSTs ``/api/v1/orders`` (token auth, a fresh ``Idempotency-Key`` per
   request, ``orders.lua``) to gunicorn; each order commits its outbox event and publishes
   it with publisher confirms. Printed as a ratio to the bare WSGI floor (goal >= 0.25)
   and to the textbook peer (goal >= 1.0), both measured in the same run, interleaved:
   the peer (``loadtests.bench.textbook_urls``) is a DRF ``ModelSerializer`` create of
   the order and its lines in one ``atomic()``, with DRF's token authentication, no
   idempotency, no outbox and no rate limit, on the same database and gunicorn flags.
   The web tier's CPU per order follows (goal <= 3 ms). No worker runs meanwhile, so
   the two do not share the CPUs.
2. Latency: a real Celery worker consumes while orders arrive at a steady rate; for each
   order the database holds ``created_at`` (set in the placing transaction) and
   ``updated_at`` (set by ``reserve_inventory`` in the transaction that confirms it).
   Printed as p50/p99 and p99 over the goal of 1 s. The CPU each part of the machine
   spent meanwhile, per order, is the whole order's cost (placed by the web tier,
   published, reserved, confirmed, emailed by the worker), set against the peer's web
   CPU per order: the one figure a textbook order path has to beat.

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
from loadtests.bench.options import BenchOptions
from loadtests.bench.site import BASE_DIR, base_environment, manage
from loadtests.bench.targets import PLAIN_DJANGO, TEXTBOOK_SETTINGS
from loadtests.bench.wrk import WrkResult, find_wrk, parse_wrk

SCRIPT = Path(__file__).with_name("orders.lua")
WORKERS = 2
CONNECTIONS = 16
DURATION_SECONDS = 5
ROUNDS = 2
RATE_PER_SECOND = 50
LATENCY_SECONDS = 10
THROUGHPUT_GOAL = 0.25
PEER_GOAL = 1.0
WEB_CPU_GOAL_MS = 3.0
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
# Run under the textbook settings: DRF's own token for the same user.
_TEXTBOOK_SETUP = """
from rest_framework.authtoken.models import Token
from apps.users.models import User
print(Token.objects.create(user=User.objects.get(username="bench")).key)
"""


def section(options: BenchOptions | None = None) -> int:
    """Measure and print the lines; return 0, or 1 when a measurement failed.

    ``options`` sets the throughput rounds' count and length (default 2 x 5 s).
    """
    duration = options.duration if options else DURATION_SECONDS
    rounds = options.rounds if options else ROUNDS
    from deploy.local.servers import Servers, broker_url_or_start

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
        textbook_env = env | {"DJANGO_SETTINGS_MODULE": TEXTBOOK_SETTINGS}
        # The same database; only DRF's token table is added.
        manage(textbook_env, "migrate", "--noinput")
        peer_token = manage(textbook_env, "shell", "-c", _TEXTBOOK_SETUP).split()[-1]

        bare = _serve(stack, "bare", "loadtests.bench.bare_wsgi:application", env, workdir)
        web = _serve(stack, "orders", PLAIN_DJANGO, env, workdir)
        peer = _serve(stack, "textbook", PLAIN_DJANGO, textbook_env, workdir)
        bare.wait_ready("/")
        web.wait_ready("/healthz")
        peer.wait_ready("/healthz")
        contenders = [
            Contender("floor", bare, "/"),
            Contender("ours", web, "/api/v1/orders", [product_id, token]),
            Contender("peer", peer, "/api/v1/orders", [product_id, peer_token]),
        ]
        placements = _throughput(contenders, duration, rounds)
        _purge_queues(env)
        worker = _start_worker(stack, env, workdir)
        database_pid = next(p.popen.pid for p in servers.processes if p.name == "events-pg")
        latencies = _latencies(web, env, product_id, token, worker, database_pid)
    return _print(placements, latencies, (duration, rounds))


def chain_groups(
    web_pid: int, worker_pid: int, database: cpu.Group, broker: cpu.Group
) -> dict[str, cpu.Group]:
    """Return the processes an order passes through once a worker consumes its events."""
    return {
        "web": cpu.process_tree(web_pid),
        "Celery worker": cpu.process_tree(worker_pid),
        "PostgreSQL": database,
        "RabbitMQ": broker,
    }


def _broker_group(snap: cpu.Snapshot, broker_url: str) -> cpu.Group:
    """Return the RabbitMQ node behind ``broker_url`` (by its listening socket), or, when
    it cannot be found, every RabbitMQ process on the machine."""
    from urllib.parse import urlsplit

    pid = cpu.listening_pid(urlsplit(broker_url).port or 5672)
    return cpu.descendants(snap, pid) if pid else cpu.named(*RABBITMQ_PROCESSES)


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

    @property
    def requests_per_second(self) -> float:
        """Return the mean req/s over the rounds."""
        return statistics.fmean(r.requests_per_second for r in self.rounds)

    def cpu_ms_per_order(self) -> dict[str, float]:
        orders = sum(r.requests for r in self.rounds)
        return {name: s * 1000 / orders for name, s in self.cpu_seconds.items()}


@dataclass(frozen=True)
class Contender:
    """One server of the throughput runs: a name, and what wrk sends it.

    With ``script_args`` (product id, token) wrk POSTs orders through ``orders.lua``;
    without, it GETs ``path``.
    """

    name: str
    server: GunicornServer
    path: str
    script_args: list[str] | None = None


def _throughput(
    contenders: list[Contender], duration: int, rounds: int
) -> dict[str, OrderPlacement]:
    """Return each contender's wrk rounds and CPU, the contenders run in alternating order."""
    runs = 0
    placements = {c.name: OrderPlacement([], {}) for c in contenders}
    spent: dict[str, Counter[str]] = {c.name: Counter() for c in contenders}

    def run(contender: Contender, seconds: int, *, measured: bool = True) -> None:
        nonlocal runs
        runs += 1
        args = None
        if contender.script_args is not None:
            args = [*contender.script_args, f"k{runs}"]
        groups = {
            "web": cpu.process_tree(contender.server.popen.pid),
            "PostgreSQL": cpu.named("postgres"),
            "RabbitMQ": cpu.named(*RABBITMQ_PROCESSES),
            "wrk": cpu.named("wrk"),
        }
        before = cpu.snapshot()
        result = _wrk(contender.server.base_url + contender.path, seconds, args)
        if measured:
            spent[contender.name].update(cpu.spent(before, cpu.snapshot(), groups))
            placements[contender.name].rounds.append(result)

    _progress("warm-up     " + ", ".join(c.name for c in contenders))
    for contender in contenders:
        run(contender, 1, measured=False)
    for number in range(1, rounds + 1):
        # Alternate the order, so a drift in the machine's speed hits every one alike.
        for contender in contenders if number % 2 else list(reversed(contenders)):
            run(contender, duration)
        _progress(
            f"round {number}/{rounds}   "
            + ", ".join(
                f"{name} {p.rounds[-1].requests_per_second:.0f} req/s"
                for name, p in placements.items()
            )
        )
    return {name: OrderPlacement(p.rounds, dict(spent[name])) for name, p in placements.items()}


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


@dataclass(frozen=True)
class Latencies:
    """Commit-to-confirmed seconds per order, and the CPU seconds spent meanwhile."""

    seconds: list[float]
    cpu_seconds: dict[str, float]

    def cpu_ms_per_order(self) -> dict[str, float]:
        return {name: s * 1000 / len(self.seconds) for name, s in self.cpu_seconds.items()}


def _latencies(
    web: GunicornServer,
    env: dict[str, str],
    product_id: str,
    token: str,
    worker: subprocess.Popen[bytes],
    database_pid: int,
) -> Latencies:
    """Place orders at RATE_PER_SECOND; return each one's seconds from commit to confirmed.

    The CPU comes from /proc snapshots before the first order and once the worker has
    gone quiet after the last one was confirmed (its email still to send by then).
    """
    before = cpu.snapshot()
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
    seconds = _settled_latencies(env["DATABASE_URL"], order_ids, worker)
    _wait_quiet(cpu.process_tree(worker.pid))
    after = cpu.snapshot()
    groups = chain_groups(
        web.popen.pid,
        worker.pid,
        cpu.descendants(after, database_pid),
        _broker_group(after, env["CELERY_BROKER_URL"]),
    )
    spent = cpu.spent(before, after, groups)
    # The machine's other work (the client above, other tenants) is not the order's.
    spent.pop(cpu.OTHER, None)
    return Latencies(seconds, spent)


def _wait_quiet(group: cpu.Group, timeout: float = 30.0) -> None:
    """Wait until the group spends under 3 % of a core for half a second (or the timeout)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        before = cpu.snapshot()
        time.sleep(0.5)
        if cpu.spent(before, cpu.snapshot(), {"group": group})["group"] < 0.015:
            return


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


def _print(
    placements: Mapping[str, OrderPlacement], latency: Latencies, run: tuple[int, int]
) -> int:
    floor_rps = placements["floor"].requests_per_second
    ours, peer = placements["ours"], placements["peer"]
    latencies = latency.seconds
    cuts = statistics.quantiles(latencies, n=100, method="inclusive")
    p50, p99 = statistics.median(latencies), cuts[98]
    duration, rounds = run
    print()
    print(f"events: POST /api/v1/orders (token, Idempotency-Key, PostgreSQL, outbox + "
          f"RabbitMQ confirms), gunicorn -w {WORKERS}, wrk -t2 -c{CONNECTIONS}, "
          f"{rounds} x {duration} s, interleaved with the floor and the textbook peer")  # fmt: skip
    for line in placement_lines(ours, peer, floor_rps):
        print(line)
    cores = len(os.sched_getaffinity(0))
    for line in cpu_lines(ours.cpu_ms_per_order(), floor_rps, cores):
        print(line)
    print(web_cpu_line(ours.cpu_ms_per_order(), peer.cpu_ms_per_order()))
    latency_goal = "met" if p99 <= P99_GOAL_SECONDS else "MISSED"
    print(f"  commit -> confirmed, {len(latencies)} orders at {RATE_PER_SECOND}/s, one worker "
          f"(prefork {WORKER_CONCURRENCY}, prefetch x{WORKER_PREFETCH_MULTIPLIER}): "
          f"p50 {p50 * 1000:.0f} ms  p99 {p99 * 1000:.0f} ms  "
          f"p99/goal {p99 / P99_GOAL_SECONDS:.2f} (goal p99 <= {P99_GOAL_SECONDS:.0f} s: "
          f"{latency_goal})")  # fmt: skip
    print(chain_cpu_line(latency.cpu_ms_per_order(), peer.cpu_ms_per_order(), len(latencies)))
    return 0


def _verdict(met: bool) -> str:
    return "met" if met else "MISSED"


def placement_lines(ours: OrderPlacement, peer: OrderPlacement, floor_rps: float) -> list[str]:
    """Return ours and the peer's orders/s, ours as a ratio to the floor and to the peer."""
    lines = []
    for label, placement in (("order placement, ours", ours), ("textbook peer", peer)):
        placed = placement.rounds
        lines.append(
            f"  {label:<22} {placement.requests_per_second:7.0f} req/s  "
            f"p50 {statistics.fmean(r.p50_ms for r in placed):5.1f} ms  "
            f"p99 {statistics.fmean(r.p99_ms for r in placed):5.1f} ms  "
            f"ratio {placement.requests_per_second / floor_rps:.2f} to the floor "
            f"({floor_rps:.0f} req/s)"
        )
    to_floor = ours.requests_per_second / floor_rps
    to_peer = ours.requests_per_second / peer.requests_per_second
    lines += [
        f"  ours / floor {to_floor:.2f} (goal >= {THROUGHPUT_GOAL:.2f}: "
        f"{_verdict(to_floor >= THROUGHPUT_GOAL)}); ours / textbook peer {to_peer:.2f} "
        f"(goal >= {PEER_GOAL:.2f}: {_verdict(to_peer >= PEER_GOAL)})",
    ]
    return lines


def web_cpu_line(ours_ms: Mapping[str, float], peer_ms: Mapping[str, float]) -> str:
    """Return the web tier's CPU per order, ours against its goal, next to the peer's."""
    web, peer = ours_ms.get("web", 0.0), peer_ms.get("web", 0.0)
    return (
        f"  web CPU per order: ours {web:.2f} ms (goal <= {WEB_CPU_GOAL_MS:.0f} ms: "
        f"{_verdict(web <= WEB_CPU_GOAL_MS)}), textbook peer {peer:.2f} ms"
        f"{_ratio_to(web, peer)}"
    )


def chain_cpu_line(ours_ms: Mapping[str, float], peer_ms: Mapping[str, float], orders: int) -> str:
    """Return the CPU of a whole order (placed and consumed), by part, against the peer's web.

    The peer places orders and nothing consumes them, so its web CPU is what a textbook
    order costs at the least; the ratio says how many of those one of ours costs.
    """
    total = sum(ours_ms.values())
    parts = ", ".join(f"{name} {ms:.2f}" for name, ms in ours_ms.items())
    return (
        f"  CPU per order placed and consumed ({orders} orders, worker running): "
        f"{total:.2f} ms ({parts}; ms), textbook peer's web alone "
        f"{peer_ms.get('web', 0.0):.2f} ms{_ratio_to(total, peer_ms.get('web', 0.0))}"
    )


def _ratio_to(ours: float, peer: float) -> str:
    return f", ratio {ours / peer:.2f} to the peer (lower is cheaper)" if peer > 0 else ""


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
