"""Where the stack keeps its files and which ports it listens on (``STACK_*`` variables)."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from deploy.local import postgres
from deploy.local.processes import ServerError
from deploy.workers import DEFAULT_QUEUE_PREFIX

ROOT = Path(__file__).resolve().parents[2]

# Variable → default. Every port can be moved, e.g. to run a second stack beside the first.
DEFAULTS = {
    "STACK_VAR_DIR": str(ROOT / "var" / "stack"),
    "STACK_NGINX_PORT": "8080",
    "STACK_WEB_PORTS": "8001,8002",
    "STACK_POSTGRES_PORT": "5442",
    "STACK_REPLICA_PORT": "5443",
    "STACK_PGBOUNCER_PORT": "6432",
    "STACK_PGBOUNCER_REPLICA_PORT": "6433",
    "STACK_REDIS_PORT": "6380",
    "STACK_RABBITMQ_PORT": "5672",
    "STACK_WORKER_METRICS_PORT": "9540",
    "STACK_WEBHOOK_WORKER_METRICS_PORT": "9541",
    "STACK_WORKER_CONCURRENCY": "2",
    "STACK_WEBHOOK_WORKER_CONCURRENCY": "2",
    "STACK_POSTGRES_FSYNC": "on",
    # make stack-sharded (STACK_SHARDED=1): the shard servers and the Redis Cluster nodes.
    "STACK_SHARD_PORTS": "5444,5445",
    "STACK_REDIS_CLUSTER_PORTS": "7101,7102,7103,7104,7105,7106",
}
SHARDED_VAR_DIR = str(ROOT / "var" / "stack-sharded")
# Three masters, each with one replica: the first three ports are the masters.
CLUSTER_MASTERS = 3


class StackError(ServerError):
    """The stack cannot start; the message says what to do."""


def _port(environ: Mapping[str, str], name: str) -> int:
    raw = environ.get(name) or DEFAULTS[name]
    try:
        port = int(raw)
    except ValueError:
        raise StackError(f"{name}={raw!r} is not a port number") from None
    if not 0 < port < 65536:
        raise StackError(f"{name}={raw!r} is not a port number")
    return port


def _ports(environ: Mapping[str, str], name: str) -> tuple[int, ...]:
    raw = environ.get(name) or DEFAULTS[name]
    ports = tuple(_port({name: part.strip()}, name) for part in raw.split(",") if part.strip())
    if not ports:
        raise StackError(f"{name} needs at least one port")
    return ports


def _count(environ: Mapping[str, str], name: str) -> int:
    raw = environ.get(name) or DEFAULTS[name]
    if not raw.isdigit() or int(raw) < 1:
        raise StackError(f"{name}={raw!r} is not a positive number")
    return int(raw)


@dataclass(frozen=True)
class Layout:
    """The stack's directories and ports, read from the environment."""

    var: Path
    nginx_port: int
    web_ports: tuple[int, ...]
    postgres_port: int
    replica_port: int
    pgbouncer_port: int
    pgbouncer_replica_port: int
    redis_port: int
    rabbitmq_port: int
    worker_metrics_port: int
    webhook_worker_metrics_port: int
    worker_concurrency: int
    webhook_worker_concurrency: int
    # EVENTS_QUEUE_PREFIX: the workers' -Q names are built from it.
    queue_prefix: str
    postgres_fsync: bool
    # An AMQP URL to use instead of a RabbitMQ of the stack's own.
    broker_url: str
    # make stack-sharded: orders over these shard servers, the cache on a Redis Cluster.
    shard_ports: tuple[int, ...] = ()
    redis_cluster_ports: tuple[int, ...] = ()

    @property
    def sharded(self) -> bool:
        """Whether this is ``make stack-sharded`` (shard servers and a Redis Cluster)."""
        return bool(self.shard_ports)

    @staticmethod
    def cluster_bus_port(port: int) -> int:
        """Return a Redis Cluster node's node-to-node port."""
        return port + 10000

    # The data engines are run by another launcher (``make stack-ha``): PostgreSQL at the
    # two ports (HAProxy's), Redis named by REDIS_SENTINELS, the broker at broker_url.
    external_engines: bool = False

    @classmethod
    def from_env(cls, environ: Mapping[str, str] = os.environ) -> Layout:
        """Read the layout from ``STACK_*`` variables, defaults for those unset."""
        web_ports = _ports(environ, "STACK_WEB_PORTS")
        sharded = environ.get("STACK_SHARDED", "") == "1"
        cluster_ports = _ports(environ, "STACK_REDIS_CLUSTER_PORTS") if sharded else ()
        if sharded and len(cluster_ports) != 2 * CLUSTER_MASTERS:
            raise StackError(
                f"STACK_REDIS_CLUSTER_PORTS needs {2 * CLUSTER_MASTERS} ports "
                f"({CLUSTER_MASTERS} masters, then their replicas)"
            )
        default_var = SHARDED_VAR_DIR if sharded else DEFAULTS["STACK_VAR_DIR"]
        fsync = (environ.get("STACK_POSTGRES_FSYNC") or "on").lower()
        if fsync not in ("on", "off"):
            raise StackError(f"STACK_POSTGRES_FSYNC={fsync!r}: use on or off")
        return cls(
            var=Path(environ.get("STACK_VAR_DIR") or default_var).resolve(),
            nginx_port=_port(environ, "STACK_NGINX_PORT"),
            web_ports=web_ports,
            postgres_port=_port(environ, "STACK_POSTGRES_PORT"),
            replica_port=_port(environ, "STACK_REPLICA_PORT"),
            pgbouncer_port=_port(environ, "STACK_PGBOUNCER_PORT"),
            pgbouncer_replica_port=_port(environ, "STACK_PGBOUNCER_REPLICA_PORT"),
            redis_port=_port(environ, "STACK_REDIS_PORT"),
            rabbitmq_port=_port(environ, "STACK_RABBITMQ_PORT"),
            worker_metrics_port=_port(environ, "STACK_WORKER_METRICS_PORT"),
            webhook_worker_metrics_port=_port(environ, "STACK_WEBHOOK_WORKER_METRICS_PORT"),
            worker_concurrency=_count(environ, "STACK_WORKER_CONCURRENCY"),
            webhook_worker_concurrency=_count(environ, "STACK_WEBHOOK_WORKER_CONCURRENCY"),
            queue_prefix=environ.get("EVENTS_QUEUE_PREFIX") or DEFAULT_QUEUE_PREFIX,
            postgres_fsync=fsync == "on",
            broker_url=environ.get("STACK_BROKER_URL", ""),
            shard_ports=_ports(environ, "STACK_SHARD_PORTS") if sharded else (),
            redis_cluster_ports=cluster_ports,
            external_engines=environ.get("STACK_EXTERNAL_ENGINES", "") == "1",
        )

    # --- directories ------------------------------------------------------------------

    @property
    def run_dir(self) -> Path:
        """Pid records of the running processes (see supervise.py)."""
        return self.var / "run"

    @property
    def released(self) -> Path:
        """Marker written once migrate and friends have run in this start."""
        return self.run_dir / "released"

    @property
    def nginx_prefix(self) -> Path:
        return self.var / "nginx"

    @property
    def static_root(self) -> Path:
        """collectstatic's output, served by nginx as ``/static/``."""
        return self.nginx_prefix / "static"

    def postgres_home(self, name: str) -> Path:
        return self.var / name

    def pgbouncer_home(self, name: str) -> Path:
        return self.var / name

    @property
    def redis_home(self) -> Path:
        return self.var / "redis"

    def redis_node_home(self, port: int) -> Path:
        return self.var / f"redis-node-{port}"

    @property
    def rabbitmq_home(self) -> Path:
        return self.var / "rabbitmq"

    def metrics_dir(self, name: str) -> Path:
        """One Prometheus multiprocess directory per server (never shared)."""
        return self.var / "prometheus" / name

    # --- URLs -------------------------------------------------------------------------

    @property
    def own_data(self) -> bool:
        """Whether the stack runs its own PostgreSQL servers and Redis."""
        return not self.external_engines

    @property
    def own_broker(self) -> bool:
        """Whether the stack runs its own RabbitMQ node (the launcher decided: none given)."""
        return not self.broker_url

    def database_url(self, port: int) -> str:
        return postgres.url(port)

    @property
    def redis_url(self) -> str:
        return f"redis://127.0.0.1:{self.redis_port}/0"

    @property
    def shard_urls(self) -> list[str]:
        """Return ``DATABASE_SHARD_URLS``' parts: each shard server, reached directly."""
        return [self.database_url(port) for port in self.shard_ports]

    @property
    def redis_cluster_nodes(self) -> str:
        """Return ``REDIS_CLUSTER_NODES``."""
        return ",".join(f"127.0.0.1:{port}" for port in self.redis_cluster_ports)

    def broker(self) -> str:
        return self.broker_url or f"amqp://guest:guest@127.0.0.1:{self.rabbitmq_port}//"


def venv_bin(name: str) -> str:
    """Return a program installed next to the running Python (the project's venv)."""
    return str(Path(sys.executable).parent / name)


def run(command: list[str], **options: Any) -> subprocess.CompletedProcess[bytes]:
    """Run one of the stack's own fixed commands (no shell)."""
    return subprocess.run(command, **options)  # noqa: S603 -- fixed argument lists, no shell
