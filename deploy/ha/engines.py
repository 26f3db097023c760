"""The three HA engines started together: Patroni PostgreSQL (3 etcd, HAProxy), Redis
Sentinel (1 master, 1 replica, 3 sentinels) and a 3-node RabbitMQ cluster.

Each engine is its own launcher in ``deploy.local``; this module only starts them in
parallel (each takes seconds to tens of seconds), stops whatever started when one fails,
and names the variables with which ``python -m deploy.stack`` runs the app tier on them.
"""

from __future__ import annotations

import contextlib
import os
import shutil
from concurrent.futures import Future, ThreadPoolExecutor, wait
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from deploy.local.patroni import PatroniCluster, PatroniSettings, start_cluster
from deploy.local.processes import ServerError
from deploy.local.rabbitmq_cluster import RabbitMQCluster
from deploy.local.sentinel import SentinelSet


@dataclass
class Engines:
    """The running engines under ``root`` (wiped at each start: every run takes new ports)."""

    root: Path
    settings: PatroniSettings = field(default_factory=PatroniSettings)
    patroni: PatroniCluster | None = None
    sentinels: SentinelSet | None = None
    rabbitmq: RabbitMQCluster | None = None

    def start(self, *, durable: bool = True) -> Engines:
        """Start the three engines at once; on any failure stop those that started."""
        shutil.rmtree(self.root, ignore_errors=True)
        self.root.mkdir(parents=True)
        self.root.chmod(0o755)  # servers running as postgres / rabbitmq traverse it
        sentinels = SentinelSet(self.root / "redis")
        # Node names of their own: a drill and a stack may run side by side.
        rabbitmq = RabbitMQCluster(self.root / "rabbitmq", prefix=f"hs{os.getpid()}n")
        self.root.joinpath("rabbitmq").chmod(0o755)
        interrupted: BaseException | None = None
        with ThreadPoolExecutor(max_workers=3) as pool:
            patroni = pool.submit(
                start_cluster, self.root / "patroni", settings=self.settings, durable=durable
            )
            redis = pool.submit(sentinels.start)
            broker = pool.submit(rabbitmq.start)
            while True:
                # A Ctrl-C meanwhile waits for every launcher: what they start is stopped.
                try:
                    futures: list[Future[Any]] = [patroni, redis, broker]
                    wait(futures)
                    break
                except BaseException as error:  # noqa: BLE001 -- re-raised below
                    interrupted = interrupted or error
        # Each launcher stops what it started when it fails itself.
        self.patroni = patroni.result() if patroni.exception() is None else None
        self.sentinels = sentinels if redis.exception() is None else None
        self.rabbitmq = rabbitmq if broker.exception() is None else None
        errors = [e for f in (patroni, redis, broker) if (e := f.exception()) is not None]
        if interrupted is not None or errors:
            self.stop()
            raise interrupted or errors[0]
        return self

    def stack_environment(self) -> dict[str, str]:
        """Return the variables that run ``python -m deploy.stack`` on these engines."""
        patroni, sentinels, rabbitmq = self.running()
        return {
            "STACK_EXTERNAL_ENGINES": "1",
            "STACK_POSTGRES_PORT": str(patroni.haproxy.primary_port),
            "STACK_REPLICA_PORT": str(patroni.haproxy.replica_port),
            "STACK_BROKER_URL": rabbitmq.urls(),
            **sentinels.topology.environment(),
        }

    def describe(self) -> str:
        """Return one line per engine: where it listens."""
        patroni, sentinels, rabbitmq = self.running()
        return "\n".join(
            [
                f"PostgreSQL (Patroni, leader {patroni.leader()}): HAProxy primary "
                f"{patroni.haproxy.primary_port}, replica {patroni.haproxy.replica_port}",
                f"Redis Sentinel: master {sentinels.master_name()}, sentinels "
                + ",".join(map(str, sentinels.sentinel_ports)),
                f"RabbitMQ: {rabbitmq.urls()}",
            ]
        )

    def running(self) -> tuple[PatroniCluster, SentinelSet, RabbitMQCluster]:
        """Return the three running engines (after ``start``)."""
        if self.patroni is None or self.sentinels is None or self.rabbitmq is None:
            raise ServerError("the HA engines are not running")
        return self.patroni, self.sentinels, self.rabbitmq

    def stop(self) -> None:
        """Stop every engine that runs, leaving no process behind."""
        with contextlib.suppress(Exception):
            if self.rabbitmq is not None:
                self.rabbitmq.stop()
        with contextlib.suppress(Exception):
            if self.sentinels is not None:
                self.sentinels.stop()
        with contextlib.suppress(Exception):
            if self.patroni is not None:
                self.patroni.stop(remove=False)
        self.patroni = self.sentinels = self.rabbitmq = None
