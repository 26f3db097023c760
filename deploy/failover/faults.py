"""The drill's faults: each injects one failure, waits for the engine's own recovery and
returns the failover time the engine reports; ``heal`` brings the lost member back."""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass

from deploy.ha.engines import Engines
from deploy.local.processes import wait_until

ORDERS_QUEUE = "highscale.orders"


@dataclass(frozen=True)
class Fault:
    name: str
    slug: str  # what ``--fault`` names it by
    inject: Callable[[Engines], tuple[float, Callable[[], None]]]
    # Goal on the window (seconds clients saw writes fail) and on failed requests.
    window_goal: float
    failed_goal: int | None  # None: failed attempts allowed (the client retries)


def kill_postgres_leader(engines: Engines) -> tuple[float, Callable[[], None]]:
    """SIGKILL the leader's postmaster and its Patroni; Patroni elects the replica."""
    patroni, _, _ = engines.running()
    started = time.monotonic()
    old = patroni.kill_leader()
    patroni.wait_leader(exclude=old)
    took = time.monotonic() - started

    def heal() -> None:
        patroni.revive(old)
        patroni.wait_healthy()

    return took, heal


def kill_redis_master(engines: Engines) -> tuple[float, Callable[[], None]]:
    """SIGKILL the Redis master; Sentinel promotes the replica."""
    _, sentinels, _ = engines.running()
    killed_at = sentinels.kill_master()
    return sentinels.wait_failover(killed_at), sentinels.revive


def kill_rabbitmq_queue_leader(engines: Engines) -> tuple[float, Callable[[], None]]:
    """SIGKILL the RabbitMQ node leading the orders queue; the quorum elects a new one."""
    _, _, rabbitmq = engines.running()
    leader = rabbitmq.queue_leader(ORDERS_QUEUE)
    started = time.monotonic()
    rabbitmq.kill_node(leader)
    wait_until(lambda: rabbitmq.queue_leader(ORDERS_QUEUE) != leader, 60, "a new queue leader")
    took = time.monotonic() - started

    def heal() -> None:
        rabbitmq.start_node(leader)
        rabbitmq.wait_running(rabbitmq.size)

    return took, heal


def switchover(engines: Engines) -> tuple[float, Callable[[], None]]:
    """A planned ``patronictl switchover``: the zero-downtime case."""
    patroni, _, _ = engines.running()
    started = time.monotonic()
    patroni.switchover()
    took = time.monotonic() - started

    def heal() -> None:
        patroni.wait_healthy()

    return took, heal


def faults(ttl: int) -> list[Fault]:
    return [
        Fault("PostgreSQL leader SIGKILL", "postgres", kill_postgres_leader, ttl + 5, None),
        Fault("Redis master SIGKILL", "redis", kill_redis_master, 5, 0),
        Fault("RabbitMQ orders-queue leader SIGKILL", "rabbitmq", kill_rabbitmq_queue_leader, 5, 0),
        Fault("Patroni switchover", "switchover", switchover, 3, None),
    ]
