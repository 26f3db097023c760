"""The processes of the stack: what each runs, what it waits for, and when it stops.

Tiers order the shutdown: every process stops only after all processes of lower tiers
have exited, so nginx stops taking requests first, then gunicorn drains and the Celery
workers finish their tasks, then the poolers, and the databases, Redis and RabbitMQ last.
"""

from __future__ import annotations

import os
import signal
import sys
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import urlsplit

from deploy.local import postgres, rabbitmq, redis, redis_cluster
from deploy.local.binaries import find_binary
from deploy.local.postgres import PostgresServer
from deploy.local.processes import port_open
from deploy.stack.layout import CLUSTER_MASTERS, ROOT, Layout, run, venv_bin
from deploy.workers import FAST, POOLS, WorkerPool

# (what is awaited, the check) — a process starts once every check of its list passes.
Check = tuple[str, Callable[[], bool]]

NGINX_TIER, APP_TIER, POOLER_TIER, STORE_TIER, PRIMARY_TIER = range(5)


@dataclass(frozen=True)
class Service:
    """One long-running process of the stack."""

    name: str
    tier: int
    command: list[str]
    env: dict[str, str] = field(default_factory=dict)
    user: str | None = None
    stop_signal: int = signal.SIGTERM
    # Signal the whole process group (a wrapper script that forks the real server).
    signal_group: bool = False
    stop_timeout: float = 30.0
    waits_for: tuple[Check, ...] = ()
    prepare: Callable[[], None] | None = None
    # Start again when it exits on its own (a web instance told to stop by an operator).
    restart: bool = False


def app_env(layout: Layout, secret_key: str) -> dict[str, str]:
    """Return the environment of the Django processes (the contract's variables)."""
    origins = f"http://127.0.0.1:{layout.nginx_port},http://localhost:{layout.nginx_port}"
    given = os.environ
    return {
        "DJANGO_SETTINGS_MODULE": "config.settings",
        "DJANGO_DEBUG": "false",
        "DJANGO_SECRET_KEY": given.get("DJANGO_SECRET_KEY") or secret_key,
        "DJANGO_ALLOWED_HOSTS": given.get("DJANGO_ALLOWED_HOSTS") or "127.0.0.1,localhost",
        "DJANGO_CSRF_TRUSTED_ORIGINS": given.get("DJANGO_CSRF_TRUSTED_ORIGINS") or origins,
        # Plain HTTP on loopback: secure-only cookies would never come back.
        "DJANGO_SESSION_COOKIE_SECURE": given.get("DJANGO_SESSION_COOKIE_SECURE") or "false",
        "DJANGO_CSRF_COOKIE_SECURE": given.get("DJANGO_CSRF_COOKIE_SECURE") or "false",
        "DJANGO_STATIC_ROOT": str(layout.static_root),
        "DATABASE_URL": layout.database_url(layout.pgbouncer_port),
        "CELERY_BROKER_URL": layout.broker(),
        # Only nginx may tell the app who the client is.
        "RATELIMIT_TRUSTED_PROXIES": "127.0.0.1",
        "PYTHONUNBUFFERED": "1",
        **_data_env(layout),
    }


def _data_env(layout: Layout) -> dict[str, str]:
    if layout.own_data:
        # make stack-sharded: the cluster replaces the single Redis.
        cache = _sharded_env(layout) if layout.sharded else {"REDIS_URL": layout.redis_url}
        return {
            "DATABASE_REPLICA_URLS": layout.database_url(layout.pgbouncer_replica_port),
            **cache,
        }
    # HAProxy's replica port balances the replicas itself; Redis through its sentinels.
    return {
        "DATABASE_REPLICA_URLS": layout.database_url(layout.replica_port),
        "REDIS_SENTINELS": os.environ["REDIS_SENTINELS"],
        "REDIS_SENTINEL_MASTER": os.environ["REDIS_SENTINEL_MASTER"],
    }


def _sharded_env(layout: Layout) -> dict[str, str]:
    """Return what make stack-sharded adds: the shard servers and the Redis Cluster."""
    return {
        "DATABASE_SHARD_URLS": ",".join(layout.shard_urls),
        "REDIS_CLUSTER_NODES": layout.redis_cluster_nodes,
    }


def services(layout: Layout) -> list[Service]:
    """Return every process of the stack for ``layout``."""
    found = [_pgbouncer(layout, "pgbouncer", layout.postgres_port)]
    if layout.own_data:
        found += [
            _postgres(layout, "postgres", layout.postgres_port, PRIMARY_TIER),
            _postgres(layout, "replica", layout.replica_port, STORE_TIER),
            _pgbouncer(layout, "pgbouncer-replica", layout.replica_port),
        ]
    if layout.own_data and layout.sharded:
        found += [
            _postgres(layout, f"shard{number}", port, PRIMARY_TIER)
            for number, port in enumerate(layout.shard_ports, 1)
        ]
        found += [_redis_cluster_node(layout, port) for port in layout.redis_cluster_ports]
    elif layout.own_data:
        found.append(_redis(layout))
    if layout.own_broker:
        found.append(_rabbitmq(layout))
    found += [_web(layout, index, port) for index, port in enumerate(layout.web_ports, 1)]
    found += [_worker(layout, pool) for pool in POOLS]
    found += [_beat(layout), _nginx(layout)]
    return found


# --- checks -----------------------------------------------------------------------------


def _pg_ready(port: int) -> Check:
    return (f"PostgreSQL on port {port}", lambda: postgres.is_ready(port))


def _port(what: str, port: int) -> Check:
    return (f"{what} on port {port}", lambda: port_open("127.0.0.1", port))


def _released(layout: Layout) -> Check:
    return ("migrations and static files (web1)", layout.released.exists)


def _broker(layout: Layout) -> Check:
    url = urlsplit(layout.broker().split(";")[0])
    host, port = url.hostname or "127.0.0.1", url.port or 5672
    return (f"RabbitMQ on {host}:{port}", lambda: port_open(host, port))


# --- data services ----------------------------------------------------------------------


def _postgres(layout: Layout, name: str, port: int, tier: int) -> Service:
    settings = {**postgres.REPLICATION, "max_connections": "200"}
    if not layout.postgres_fsync:
        settings.update(postgres.NO_FSYNC)
    server = PostgresServer(name, layout.postgres_home(name), port, settings)
    if name != "replica":
        waits: tuple[Check, ...] = ()
        prepare = _initdb(server.data)
    else:
        waits = (_pg_ready(layout.postgres_port),)
        prepare = _basebackup(layout, server.data)
    return Service(
        name, tier, server.command(), user=postgres.run_as(), stop_signal=signal.SIGINT,
        stop_timeout=60, waits_for=waits, prepare=prepare,
    )  # fmt: skip


def _initdb(data: Path) -> Callable[[], None]:
    def initdb() -> None:
        if (data / "PG_VERSION").exists():
            print(f"reusing {data}", flush=True)
            return
        print(f"first run: initdb {data}", flush=True)
        postgres.initdb(data)

    return initdb


def _basebackup(layout: Layout, data: Path) -> Callable[[], None]:
    def basebackup() -> None:
        if (data / "PG_VERSION").exists():
            print(f"reusing {data}", flush=True)
            return
        print(f"first run: pg_basebackup -R into {data}", flush=True)
        postgres.base_backup(layout.postgres_port, data, standby=True)

    return basebackup


def _pgbouncer(layout: Layout, name: str, server_port: int) -> Service:
    ini = layout.pgbouncer_home(name) / "pgbouncer.ini"
    return Service(
        name, POOLER_TIER, [find_binary("pgbouncer"), str(ini)], user=postgres.run_as(),
        stop_signal=signal.SIGINT, waits_for=(_pg_ready(server_port),),
    )  # fmt: skip


def _redis(layout: Layout) -> Service:
    command = redis.command(layout.redis_port, layout.redis_home, save="60 1000 300 10")
    return Service("redis", STORE_TIER, command)


def _redis_cluster_node(layout: Layout, port: int) -> Service:
    home = layout.redis_node_home(port)
    command = redis_cluster.command(port, layout.cluster_bus_port(port), home, node_timeout_ms=2000)
    return Service(f"redis-node-{port}", STORE_TIER, command)


def _form_redis_cluster(layout: Layout) -> None:
    """Form the Redis Cluster of the stack's nodes once (later runs reuse their nodes.conf)."""
    nodes = [(port, layout.cluster_bus_port(port)) for port in layout.redis_cluster_ports]
    redis_cluster.LocalRedisCluster.form_supervised(nodes, masters=CLUSTER_MASTERS)


def _rabbitmq(layout: Layout) -> Service:
    binary, user = rabbitmq.server()
    node = f"highscale-stack-{layout.rabbitmq_port}@localhost"
    env = rabbitmq.environment(
        layout.rabbitmq_home, node=node, port=layout.rabbitmq_port,
        dist_port=layout.rabbitmq_port + 20000,
    )  # fmt: skip
    env["RABBITMQ_LOGS"] = "-"
    return Service(
        "rabbitmq", STORE_TIER, [binary], env=env, user=user, signal_group=True, stop_timeout=45
    )


# --- the application --------------------------------------------------------------------


def _python() -> str:
    return sys.executable


def _web(layout: Layout, index: int, port: int) -> Service:
    name = f"web{index}"
    command = [
        venv_bin("gunicorn"), "--config", str(ROOT / "deploy" / "gunicorn.conf.py"),
        "--bind", f"127.0.0.1:{port}", "--pid", str(layout.run_dir / f"{name}.pid"),
        "--control-socket", str(layout.run_dir / f"{name}.ctl"),
        "config.wsgi",
    ]  # fmt: skip
    env = {"PROMETHEUS_MULTIPROC_DIR": str(layout.metrics_dir(name))}
    if os.environ.get("STACK_WEB_CONCURRENCY"):
        env["WEB_CONCURRENCY"] = os.environ["STACK_WEB_CONCURRENCY"]
    waits: tuple[Check, ...]
    if index == 1:
        # Not the replica: reads go to the primary until it is up.
        waits = (
            _pg_ready(layout.postgres_port),
            _port("PgBouncer", layout.pgbouncer_port),
            *(_stores(layout) if layout.own_data else ()),
            _broker(layout),
        )
        prepare: Callable[[], None] | None = _release(layout)
    else:
        waits, prepare = (_released(layout),), None
    # gunicorn's own graceful_timeout (25 s) bounds the drain; this is the backstop.
    return Service(
        name, APP_TIER, command, env=env, stop_timeout=40, waits_for=waits, prepare=prepare,
        restart=True,
    )  # fmt: skip


def _stores(layout: Layout) -> tuple[Check, ...]:
    """Return the checks of Redis and, on the sharded stack, of the shards and cluster nodes."""
    if not layout.sharded:
        return (_port("Redis", layout.redis_port),)
    return (
        *(_pg_ready(port) for port in layout.shard_ports),
        *(_port("Redis Cluster node", port) for port in layout.redis_cluster_ports),
    )


def _release(layout: Layout) -> Callable[[], None]:
    """Return the one-off step run before the app starts (see deploy/stack/release.py)."""

    def release() -> None:
        if layout.sharded:
            _form_redis_cluster(layout)
        env = {**os.environ, "DATABASE_URL": layout.database_url(layout.postgres_port)}
        env.pop("DATABASE_REPLICA_URLS", None)
        run([_python(), "-m", "deploy.stack.release"], check=True, env=env, cwd=ROOT)
        base = f"http://127.0.0.1:{layout.nginx_port}"
        print(f"admin: {base}/admin/ (admin / admin), API docs: {base}/api/docs/", flush=True)
        layout.released.touch()

    return release


def _worker(layout: Layout, pool: WorkerPool) -> Service:
    """Return one Celery worker pool of deploy/workers.py: its queues, prefetch, concurrency."""
    concurrency, metrics_port = (
        (layout.worker_concurrency, layout.worker_metrics_port)
        if pool is FAST
        else (layout.webhook_worker_concurrency, layout.webhook_worker_metrics_port)
    )
    command = [
        venv_bin("celery"), "--app", "config", "worker", "--loglevel", "INFO",
        *pool.arguments(layout.queue_prefix), "--concurrency", str(concurrency),
        # Unique per stack: two stacks on one broker must not share a worker's name.
        "--hostname", f"stack-{pool.name}-{layout.nginx_port}@%h",
    ]  # fmt: skip
    env = {
        "PROMETHEUS_MULTIPROC_DIR": str(layout.metrics_dir(pool.name)),
        "CELERY_METRICS_PORT": str(metrics_port),
    }
    # SIGTERM to the main process only: a warm shutdown, where the pool finishes its
    # tasks (a task cut short is redelivered: acks_late, reject_on_worker_lost).
    return Service(
        pool.name, APP_TIER, command, env=env, stop_timeout=60, waits_for=(_released(layout),)
    )


def _beat(layout: Layout) -> Service:
    command = [
        venv_bin("celery"), "--app", "config", "beat", "--loglevel", "INFO",
        "--schedule", str(layout.var / "celerybeat-schedule"), "--pidfile", "",
    ]  # fmt: skip
    return Service("beat", APP_TIER, command, waits_for=(_released(layout),))


def _nginx(layout: Layout) -> Service:
    prefix = layout.nginx_prefix
    command = [
        find_binary("nginx"), "-p", f"{prefix}/", "-c", str(prefix / "nginx.conf"),
        "-g", "daemon off; error_log stderr warn;",
    ]  # fmt: skip
    waits = (_released(layout), *(_port("gunicorn", port) for port in layout.web_ports))
    # SIGQUIT: a graceful shutdown that answers the requests already received.
    return Service("nginx", NGINX_TIER, command, stop_signal=signal.SIGQUIT, waits_for=waits)
