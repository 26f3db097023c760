"""Router overhead per query, in process: the highscale router against a plain one.

Run by ``python -m loadtests.bench --section replicas`` in a process configured with a
primary and a live streaming replica (``DATABASE_URL``, ``DATABASE_REPLICA_URLS``).
The plain router sends every read to the replica and every write to the primary,
with no state and no health check: the least any two-alias router does.
Each figure is the best of several interleaved batches, so a noisy neighbour inflates
both sides alike rather than one.
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable
from typing import Any

GOAL_MICROSECONDS = 10.0
BATCHES = 7
CALLS = 20_000
QUERIES = 1_000


class PlainRouter:
    """Reads on the replica, writes on the primary, nothing else."""

    def __init__(self, replica: str) -> None:
        self.replica = replica

    def db_for_read(self, model: Any, **hints: Any) -> str:
        return self.replica

    def db_for_write(self, model: Any, **hints: Any) -> str:
        return "default"


def best_microseconds(pairs: dict[str, Callable[[], None]], calls: int) -> dict[str, float]:
    """Return, per name, the best time of one call over interleaved batches, in µs."""
    best = dict.fromkeys(pairs, float("inf"))
    for _ in range(BATCHES):
        for name, call in pairs.items():
            start = time.perf_counter()
            for _ in range(calls):
                call()
            best[name] = min(best[name], (time.perf_counter() - start) / calls * 1e6)
    return best


def main() -> int:
    """Print the per-query overhead of routing, and the end-to-end read."""
    import django

    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings")
    django.setup()
    from django.db.utils import ConnectionRouter

    from apps.core.db.health import monitor
    from apps.core.db.router import ReplicaRouter
    from apps.core.db.state import routing_scope
    from apps.core.db.topology import live_replicas
    from apps.orders.models import Product

    replicas = live_replicas()
    if not replicas:
        print("replicas: no live replica configured; nothing to measure")
        return 1
    alias = replicas[0][0]
    monitor.ensure_started()
    deadline = time.monotonic() + 30
    while not monitor.usable(alias, None):
        if time.monotonic() > deadline:
            print(f"replicas: {alias} never became usable")
            return 1
        time.sleep(0.05)

    plain, ours = ConnectionRouter([PlainRouter(alias)]), ConnectionRouter([ReplicaRouter()])

    def scoped_read(router: ConnectionRouter) -> Callable[[], None]:
        def call() -> None:
            router.db_for_read(Product)

        return call

    def first_read_of_a_request(router: ConnectionRouter) -> Callable[[], None]:
        def call() -> None:
            with routing_scope():
                router.db_for_read(Product)

        return call

    with routing_scope() as state:
        if ours.db_for_read(Product) != alias or state.replica != alias:
            print(f"replicas: reads were not routed to {alias}")
            return 1
        decision = best_microseconds(
            {"plain": scoped_read(plain), "highscale": scoped_read(ours)}, CALLS
        )
    request = best_microseconds(
        {"plain": first_read_of_a_request(plain), "highscale": first_read_of_a_request(ours)},
        CALLS,
    )

    product = Product.objects.using("default").create(
        sku=f"ROUTER-{os.getpid()}", name="Router", price="1.00", stock=1
    )

    # End to end: the same ORM read by primary key, through each router.
    import django.db.models.query as query_module

    def orm_read(router: ConnectionRouter) -> Callable[[], None]:
        def call() -> None:
            query_module.router = router  # type: ignore[attr-defined]
            for _ in range(QUERIES // 10):
                Product.objects.filter(pk=product.pk).values_list("pk", flat=True).first()

        return call

    with routing_scope():
        deadline = time.monotonic() + 30
        while not Product.objects.filter(pk=product.pk).exists():
            if time.monotonic() > deadline:
                print("replicas: the product never reached the replica")
                return 1
            time.sleep(0.05)
        original = query_module.router  # type: ignore[attr-defined]
        try:
            orm = best_microseconds({"plain": orm_read(plain), "highscale": orm_read(ours)}, 10)
        finally:
            query_module.router = original  # type: ignore[attr-defined]
    orm = {name: value / (QUERIES // 10) for name, value in orm.items()}
    Product.objects.using("default").filter(pk=product.pk).delete()

    overhead = decision["highscale"] - decision["plain"]
    verdict = "met" if overhead <= GOAL_MICROSECONDS else "MISSED"
    lines = [
        ("router decision per query", decision),
        ("scope + first choice per request", request),
        ("ORM read by pk on the replica", orm),
    ]
    print()
    print(f"replicas: router overhead against a plain two-alias router ({alias}, best of "
          f"{BATCHES} interleaved batches)")  # fmt: skip
    for name, figures in lines:
        plain_us, ours_us = figures["plain"], figures["highscale"]
        print(
            f"  {name:<34} plain {plain_us:8.2f} µs  highscale {ours_us:8.2f} µs  "
            f"difference {ours_us - plain_us:+7.2f} µs  ratio {ours_us / plain_us:5.2f}"
        )
    print(
        f"  router overhead per query (decision): {overhead:+.2f} µs; "
        f"goal <= {GOAL_MICROSECONDS:.0f} µs: {verdict}"
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
