"""``make failover-drill`` (``python -m deploy.failover [--short] [--rate 20]``).

Builds its own HA topology under ``var/failover-drill`` (``FAILOVER_DRILL_DIR``), never
the stack's data: the engines of ``deploy/ha`` and the app tier of ``make stack`` on free
ports. Places orders at a steady rate through nginx, then, one at a time, SIGKILLs the
PostgreSQL leader (postmaster and Patroni), the Redis master, the RabbitMQ node leading
the orders queue, and runs a planned Patroni switchover. After each fault the killed
member is brought back and the load settles before the next one. At the end every order
the client was told 201 is looked up in the database: one row per key, none pending.

Prints a row per fault and exits 1 on any lost or duplicated order, any order left
pending, or a window over its goal; 2 when the topology could not start.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import psycopg
import requests

from deploy.failover.faults import Fault, faults
from deploy.failover.load import Order, OrderLoad
from deploy.ha.engines import Engines
from deploy.ha.stack import start_app_tier, stop_app_tier
from deploy.local.patroni import PatroniSettings
from deploy.local.processes import ServerError, free_port, wait_until
from deploy.stack.layout import ROOT

APP_START_TIMEOUT = 240.0
PENDING_TIMEOUT = 240.0


@dataclass
class Row:
    fault: Fault
    engine_seconds: float
    window: float
    failed: int
    unanswered: int
    lost: int = 0
    duplicated: int = 0
    pending: int = 0
    # The period this row owns: from its fault until the next fault (monotonic seconds).
    start: float = 0.0
    end: float = float("inf")

    @property
    def verdicts(self) -> list[str]:
        missed = []
        if self.window > self.fault.window_goal:
            missed.append(f"window {self.window:.1f} s > {self.fault.window_goal:g} s")
        if self.fault.failed_goal is not None and self.failed > self.fault.failed_goal:
            missed.append(f"{self.failed} failed requests > {self.fault.failed_goal}")
        for what, count in (
            ("unanswered after retries", self.unanswered),
            ("lost", self.lost),
            ("duplicated", self.duplicated),
            ("pending", self.pending),
        ):
            if count:
                missed.append(f"{count} {what}")
        return missed


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="make failover-drill", description=__doc__)
    parser.add_argument("--short", action="store_true", help="one round of each fault")
    parser.add_argument("--rounds", type=int, default=3, help="rounds of each fault")
    parser.add_argument("--rate", type=float, default=None, help="orders per second")
    parser.add_argument(
        "--fault",
        action="append",
        choices=[fault.slug for fault in faults(0)],
        help="inject only this fault (repeatable; default: every fault)",
    )
    parser.add_argument(
        "--attempts",
        type=Path,
        help="write every request attempt here (JSON lines: seconds from the first fault)",
    )
    args = parser.parse_args(argv)
    rounds = 1 if args.short else max(1, args.rounds)
    # The short mode's rate stays under what the worker drains on a 2-core box.
    rate = args.rate or (10.0 if args.short else 20.0)
    settle = 5.0 if args.short else 15.0
    var = Path(os.environ.get("FAILOVER_DRILL_DIR") or ROOT / "var" / "failover-drill")
    settings = PatroniSettings()
    engines = Engines(var.resolve() / "engines", settings)
    stack = None
    try:
        print(f"failover drill: starting the HA engines under {engines.root}", flush=True)
        engines.start(durable=False)
        nginx = free_port()
        extra = {
            "STACK_NGINX_PORT": str(nginx),
            "STACK_WEB_PORTS": f"{free_port()},{free_port()}",
            "STACK_PGBOUNCER_PORT": str(free_port()),
            "STACK_WORKER_METRICS_PORT": str(free_port()),
            "RATELIMIT_OVERRIDES": "api=1000000/60",
            "STACK_WORKER_CONCURRENCY": "4",
        }
        stack = start_app_tier(engines, var.resolve() / "app", extra)
        base = f"http://127.0.0.1:{nginx}"
        token, products = _client(base, stack)
        load = OrderLoad(base, token, products, rate=rate)
        load.start()
        time.sleep(settle)
        rows = []
        for _ in range(rounds):
            for fault in faults(settings.ttl):
                if args.fault and fault.slug not in args.fault:
                    continue
                rows.append(_inject(engines, load, fault, settle))
        load.stop()
        if args.attempts:
            _write_attempts(args.attempts, load.orders, rows)
        _verify(engines, load.orders, rows, PENDING_TIMEOUT / 2 if args.short else PENDING_TIMEOUT)
        _report_dead_letters(engines)
    except ServerError as error:
        print(f"failover drill: {error}", file=sys.stderr)
        return 2
    finally:
        if stack is not None:
            stop_app_tier(stack)
        engines.stop()
    return _report(rows, rounds, rate)


def _client(base: str, stack: object) -> tuple[str, list[int]]:
    """Wait for the app behind nginx; sign in as the demo admin; return token, products."""

    def ready() -> bool:
        try:
            return requests.get(f"{base}/readyz", timeout=2).status_code == 200
        except requests.RequestException:
            return False

    wait_until(ready, APP_START_TIMEOUT, "the app tier behind nginx", interval=0.5)
    answer = requests.post(
        f"{base}/api/v1/auth/token", json={"username": "admin", "password": "admin"}, timeout=10
    )
    answer.raise_for_status()
    token = str(answer.json()["token"])
    listing = requests.get(f"{base}/api/v1/products", timeout=10).json()
    products = [int(p["id"]) for p in listing["results"]]
    return token, products


def _inject(engines: Engines, load: OrderLoad, fault: Fault, settle: float) -> Row:
    print(f"failover drill: {fault.name}", flush=True)
    started = time.monotonic()
    engine_seconds, heal = fault.inject(engines)
    # Let the writes come back before the lost member returns (it would hide the window).
    time.sleep(settle)
    heal()
    time.sleep(settle)
    failures = [
        a
        for o in list(load.orders)
        for a in list(o.attempts)
        if a.sent >= started and (a.status == 0 or a.status >= 500)
    ]
    # From the first failed attempt to the end of the last: how long clients saw writes
    # fail. Not from ``started``: a switchover's patronictl takes a second to start
    # before anything changes, and the kills fail the next request at once anyway.
    window = max(a.ended for a in failures) - min(a.sent for a in failures) if failures else 0.0
    return Row(fault, engine_seconds, window, len(failures), 0, start=started)


def _verify(engines: Engines, orders: list[Order], rows: list[Row], wait: float) -> None:
    """Look every order up in the database, once nothing is pending any more."""
    patroni, _, _ = engines.running()
    acknowledged = {o.key: o.order_id for o in orders if o.order_id is not None}
    keys = [o.key for o in orders]

    def counts() -> dict[str, tuple[int, int]]:
        with psycopg.connect(patroni.primary_url, connect_timeout=5) as connection:
            found = connection.execute(
                "SELECT idempotency_key, count(*), count(*) FILTER (WHERE status = 'pending') "
                "FROM orders_order WHERE idempotency_key = ANY(%s) GROUP BY idempotency_key",
                [keys],
            ).fetchall()
        return {key: (int(n), int(pending)) for key, n, pending in found}

    deadline = time.monotonic() + wait
    found = counts()
    while any(p for _, p in found.values()) and time.monotonic() < deadline:
        time.sleep(1)
        found = counts()
    for row, after in zip(rows, rows[1:], strict=False):
        row.end = after.start
    for order in orders:
        # Orders due before the first fault count with it.
        row = next((r for r in rows if order.due < r.end), rows[-1])
        n, pending = found.get(order.key, (0, 0))
        if order.key in acknowledged and n == 0:
            row.lost += 1
        row.duplicated += max(n - 1, 0)
        row.pending += pending
        if order.order_id is None:
            row.unanswered += 1


def _write_attempts(path: Path, orders: list[Order], rows: list[Row]) -> None:
    """Write one JSON line per request attempt, times from the first fault, to look for
    where a window's requests waited."""
    zero = rows[0].start if rows else 0.0
    with path.open("w") as out:
        for order in orders:
            for attempt in order.attempts:
                line = {
                    "key": order.key,
                    "sent": round(attempt.sent - zero, 3),
                    "took": round(attempt.ended - attempt.sent, 3),
                    "status": attempt.status,
                }
                out.write(json.dumps(line) + "\n")


def _report_dead_letters(engines: Engines) -> None:
    """Print the messages the consumers gave up on: why an order may have stayed pending."""
    patroni, _, _ = engines.running()
    with psycopg.connect(patroni.primary_url, connect_timeout=5) as connection:
        reasons = connection.execute(
            "SELECT task, left(reason, 160), count(*) FROM core_deadletter "
            "GROUP BY 1, 2 ORDER BY 3 DESC LIMIT 10"
        ).fetchall()
    for task, reason, count in reasons:
        print(f"failover drill: {count} dead letter(s) of {task}: {reason}", flush=True)


def _report(rows: list[Row], rounds: int, rate: float) -> int:
    header = (
        "| fault | writes failing for (s) | failed requests | lost | duplicated | pending "
        "| engine's failover (s) | goal | verdict |"
    )
    print(f"\nfailover drill: {rounds} round(s), {rate:g} orders/s, {time.strftime('%Y-%m-%d')}")
    print(header)
    print("|" + "---|" * 9)
    bad = False
    for row in rows:
        goal = f"≤ {row.fault.window_goal:g} s"
        if row.fault.failed_goal is not None:
            goal += f", ≤ {row.fault.failed_goal} failed"
        missed = row.verdicts
        bad = bad or bool(missed)
        print(
            f"| {row.fault.name} | {row.window:.1f} | {row.failed} | {row.lost} | "
            f"{row.duplicated} | {row.pending} | {row.engine_seconds:.1f} | {goal} | "
            f"{'; '.join(missed) or 'ok'} |"
        )
    print("failover drill: " + ("GOALS MISSED" if bad else "every goal met"), flush=True)
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main())
