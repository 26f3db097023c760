"""One region: its namespace and the servers in it, started the way ``make stack`` runs them.

Inside its namespace a region has its own loopback, so both regions use the same ports
(``PORTS``). Each region: PostgreSQL (primary, or a streaming replica of the other
region's primary through the relay), PgBouncer for writes (``WRITES``: the primary,
wherever it is) and for reads (``READS``: the local server), Redis, its own RabbitMQ
node, gunicorn, a Celery worker with embedded beat (the outbox sweep), nginx, and an
invalidation forwarder. Servers that the host side must reach (nginx for the front
door, PostgreSQL and Redis for the relay, PgBouncer's admin console for the operator)
also listen on the region's own address.
"""

from __future__ import annotations

import contextlib
import os
import subprocess
import sys
from dataclasses import dataclass, field
from pathlib import Path

import psycopg
import requests

from deploy.local import nginx, pgbouncer, postgres, rabbitmq, redis
from deploy.local.binaries import find_binary
from deploy.local.processes import Process, ServerError, port_open, wait_until
from deploy.region.netns import Namespace
from deploy.stack.layout import ROOT, Layout, venv_bin
from deploy.stack.services import app_env

POSTGRES, WRITES, READS, REDIS, RABBITMQ, WEB, NGINX = 5442, 6432, 6433, 6380, 5682, 8001, 8080
START_TIMEOUT = 120.0
# Both regions' own addresses: the front door and the drill call each region by it.
REGION_ADDRESSES = ("10.77.1.2", "10.77.2.2")
# A region's data is thrown away after the drill; replication and commit waits are
# what is measured, not disk flushes.
POSTGRES_SETTINGS = {
    **postgres.REPLICATION,
    "fsync": "off",
    "full_page_writes": "on",  # pg_rewind needs them
    "wal_log_hints": "on",
    "max_connections": "200",
    "wal_keep_size": "256MB",
}


def _hba_line(address: str) -> str:
    network = address.rsplit(".", 2)[0] + ".0.0/16"
    return f"host all all {network} trust\nhost replication all {network} trust\n"


@dataclass
class Region:
    """The servers of one region and how to start, repoint and kill them."""

    namespace: Namespace
    home: Path
    secret_key: str
    processes: list[Process] = field(default_factory=list)
    broker: Process | None = None

    @property
    def name(self) -> str:
        return self.namespace.region

    @property
    def address(self) -> str:
        return self.namespace.address

    @property
    def pg(self) -> postgres.PostgresServer:
        """PostgreSQL in this region, listening on loopback and the region's address."""
        settings = {
            **POSTGRES_SETTINGS,
            "listen_addresses": f"127.0.0.1,{self.address}",
            "cluster_name": self.name,
        }
        return postgres.PostgresServer(
            f"{self.name}-postgres", self.home / "postgres", port=POSTGRES, settings=settings
        )

    def dsn(self, port: int = POSTGRES, database: str = postgres.DATABASE) -> str:
        """Return a libpq URL reaching this region's ``port`` from the host side."""
        return f"postgres://postgres@{self.address}:{port}/{database}"

    # --- processes ----------------------------------------------------------------------

    def spawn(
        self,
        name: str,
        command: list[str],
        *,
        user: str | None = None,
        env: dict[str, str] | None = None,
    ) -> Process:
        """Start ``command`` in the namespace, in a session of its own, logging to a file."""
        log = self.home / "logs" / f"{name}.log"
        log.parent.mkdir(parents=True, exist_ok=True)
        with log.open("ab") as handle:
            popen = subprocess.Popen(  # noqa: S603 -- our servers, arguments built here
                self.namespace.command(command, user),
                stdout=handle,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
                env=env,
                cwd=ROOT,
                start_new_session=True,
            )
        process = Process(f"{self.name}-{name}", popen)
        self.processes.append(process)
        return process

    def wait_port(
        self, what: str, port: int, process: Process, timeout: float = START_TIMEOUT
    ) -> None:
        def ready() -> bool:
            if process.popen.poll() is not None:
                raise ServerError(f"{self.name} {what} exited; see {self.home / 'logs'}")
            return port_open(self.address, port)

        wait_until(ready, timeout, f"{self.name} {what}", interval=0.05)

    # --- PostgreSQL ---------------------------------------------------------------------

    def init_primary(self) -> None:
        """initdb this region's cluster (run on the host side: no network involved)."""
        server = self.pg
        postgres.owned_dir(server.home)
        postgres.initdb(server.data)
        with (server.data / "pg_hba.conf").open("a") as hba:
            hba.write(_hba_line(self.address))

    def clone_from(self, upstream: str) -> None:
        """Base-backup the primary at ``upstream`` (``host:port`` as seen from this region,
        i.e. through the relay) into this region and set it up as its streaming replica."""
        server = self.pg
        postgres.owned_dir(server.home)
        host, port = upstream.rsplit(":", 1)
        command = [
            postgres.program("pg_basebackup"), "-h", host, "-p", port, "-U", "postgres",
            "-D", str(server.data), "-X", "stream", "-c", "fast", "-R", "--no-sync",
        ]  # fmt: skip
        result = subprocess.run(  # noqa: S603 -- a PostgreSQL program, our arguments
            self.namespace.command(command, postgres.run_as()),
            capture_output=True,
            text=True,
            check=False,
        )
        if result.returncode != 0:
            raise ServerError(f"{self.name}: pg_basebackup from {upstream} failed: {result.stderr}")

    def start_postgres(self, extra: dict[str, str] | None = None) -> None:
        """Start this region's PostgreSQL and wait until it answers on its address."""
        server = self.pg
        command = server.command()
        for key, value in (extra or {}).items():
            command += ["-c", f"{key}={value}"]
        process = self.spawn("postgres", command, user=postgres.run_as())

        def ready() -> bool:
            if process.popen.poll() is not None:
                raise ServerError(f"{self.name} PostgreSQL exited; see {self.home / 'logs'}")
            try:
                with psycopg.connect(self.dsn(database="postgres"), connect_timeout=2):
                    return True
            except psycopg.Error:
                return False

        wait_until(ready, START_TIMEOUT, f"{self.name} PostgreSQL", interval=0.05)

    # --- the rest of the region -----------------------------------------------------------

    def layout(self) -> Layout:
        """The stack's layout for this region's directories and ports."""
        return Layout.from_env(
            {
                "STACK_VAR_DIR": str(self.home),
                "STACK_NGINX_PORT": str(NGINX),
                "STACK_WEB_PORTS": str(WEB),
                "STACK_POSTGRES_PORT": str(POSTGRES),
                "STACK_REPLICA_PORT": str(POSTGRES),
                "STACK_PGBOUNCER_PORT": str(WRITES),
                "STACK_PGBOUNCER_REPLICA_PORT": str(READS),
                "STACK_REDIS_PORT": str(REDIS),
                "STACK_RABBITMQ_PORT": str(RABBITMQ),
            }
        )

    def environment(self) -> dict[str, str]:
        """The app's environment in this region: the contract's variables."""
        env = {**os.environ, **app_env(self.layout(), self.secret_key)}
        env.update(
            # The drill's client places hundreds of orders a minute as one user.
            RATELIMIT_OVERRIDES="api=1000000/60",
            WEB_CONCURRENCY="3",
            DJANGO_ALLOWED_HOSTS=",".join(("127.0.0.1", "localhost", *REGION_ADDRESSES)),
            LOG_LEVEL="WARNING",
            # No edge copy of a profile: the drill checks what r2's Redis serves.
            USER_PROFILE_HTTP_MAX_AGE_SECONDS="0",
        )
        for name in ("WAREHOUSE_WEBHOOK_URL", "OTEL_EXPORTER_OTLP_ENDPOINT", "DATABASE_SHARD_URLS"):
            env.pop(name, None)
        return env

    def write_pgbouncer(self, primary: str) -> None:
        """(Re)write the writes pooler to send to ``primary`` (``host:port`` seen from here)."""
        host, port = primary.rsplit(":", 1)
        pgbouncer.write_config(
            self.home / "pgbouncer-writes", listen_port=WRITES, server_host=host,
            server_port=int(port), listen_addr=f"127.0.0.1,{self.address}",
        )  # fmt: skip

    def start_services(self, *, primary: str, peer_redis: str) -> None:
        """Start poolers, Redis, RabbitMQ, the app, its worker, nginx and the forwarder.

        ``primary`` is where writes go (``host:port`` seen from this region);
        ``peer_redis`` is the other region's Redis through the relay.
        """
        layout = self.layout()
        env = self.environment()
        self.write_pgbouncer(primary)
        reads = pgbouncer.write_config(
            self.home / "pgbouncer-reads", listen_port=READS, server_host="127.0.0.1",
            server_port=POSTGRES, listen_addr=f"127.0.0.1,{self.address}",
        )  # fmt: skip
        user = postgres.run_as()
        bouncer = find_binary("pgbouncer")
        writes_p = self.spawn(
            "pgbouncer-writes",
            [bouncer, str(self.home / "pgbouncer-writes" / "pgbouncer.ini")],
            user=user,
        )
        reads_p = self.spawn("pgbouncer-reads", [bouncer, str(reads)], user=user)
        (self.home / "redis").mkdir(exist_ok=True)
        # Reached on the region's address by the other region's forwarder (through the
        # relay): no longer loopback-only, so protected mode would refuse it.
        redis_command = redis.command(REDIS, self.home / "redis", bind=f"127.0.0.1 {self.address}")
        redis_p = self.spawn("redis", [*redis_command, "--protected-mode", "no"])
        self.wait_port("PgBouncer (writes)", WRITES, writes_p)
        self.wait_port("Redis", REDIS, redis_p)
        for directory in ("web", "worker"):
            layout.metrics_dir(directory).mkdir(parents=True, exist_ok=True)
        web = [
            venv_bin("gunicorn"), "--config", str(ROOT / "deploy" / "gunicorn.conf.py"),
            "--bind", f"127.0.0.1:{WEB}", "config.wsgi",
        ]  # fmt: skip
        self.spawn(
            "gunicorn", web, env={**env, "PROMETHEUS_MULTIPROC_DIR": str(layout.metrics_dir("web"))}
        )
        nginx_conf = nginx.write_config(layout.nginx_prefix, listen=str(NGINX), web_ports=[WEB])
        self.spawn("nginx", [
            find_binary("nginx"), "-p", f"{layout.nginx_prefix}/", "-c", str(nginx_conf),
            "-g", "daemon off; error_log stderr warn;",
        ])  # fmt: skip
        forward = [
            sys.executable, "-m", "deploy.region.forward", "--region", self.name,
            "--local", f"redis://127.0.0.1:{REDIS}/0", "--peer", peer_redis,
            "--writes", postgres.url(WRITES), "--reads", postgres.url(READS),
        ]  # fmt: skip
        self.spawn("forward", forward, env=env)
        self.wait_port("PgBouncer (reads)", READS, reads_p)

    def start_broker(self) -> None:
        """Start the region's RabbitMQ node (the slowest server to boot: start it first)."""
        self.broker = self._spawn_rabbitmq()

    def start_workers(self) -> None:
        """Once RabbitMQ answers, start the Celery worker and beat (the outbox sweep)."""
        layout = self.layout()
        env = self.environment()
        if self.broker is None:
            raise ServerError(f"{self.name}: start_broker() first")
        self.wait_port("RabbitMQ", RABBITMQ, self.broker, timeout=180)
        worker = [
            venv_bin("celery"), "--app", "config", "worker", "--loglevel", "WARNING",
            "--concurrency", "2", "--hostname", f"{self.name}@%h",
        ]  # fmt: skip
        self.spawn(
            "worker",
            worker,
            env={**env, "PROMETHEUS_MULTIPROC_DIR": str(layout.metrics_dir("worker"))},
        )
        beat = [
            venv_bin("celery"), "--app", "config", "beat", "--loglevel", "WARNING",
            "--schedule", str(self.home / "celerybeat-schedule"), "--pidfile", "",
        ]  # fmt: skip
        self.spawn("beat", beat, env=env)

    def _spawn_rabbitmq(self) -> Process:
        binary, user = rabbitmq.server()
        home = self.home / "rabbitmq"
        files = {"enabled_plugins": "[].\n", "rabbitmq.conf": "loopback_users = none\n"}
        rabbitmq.prepare_home(home, files, user)
        env = {
            "PATH": "/usr/sbin:/usr/bin:/sbin:/bin",
            **rabbitmq.environment(
                home,
                node=f"highscale-{self.name}@localhost",
                port=RABBITMQ,
                dist_port=RABBITMQ + 20000,
            ),
        }
        # On the region's own addresses, so that the host side sees it start; no route
        # leads there from the other region (the relay carries no AMQP).
        env["RABBITMQ_NODE_IP_ADDRESS"] = "0.0.0.0"  # noqa: S104 -- inside the namespace
        return self.spawn("rabbitmq", [binary], user=user, env=env)

    def wait_serving(self, timeout: float = START_TIMEOUT) -> None:
        """Wait until nginx answers /healthz on the region's address."""

        def up() -> bool:
            try:
                return (
                    requests.get(f"http://{self.address}:{NGINX}/healthz", timeout=2).status_code
                    == 200
                )
            except requests.RequestException:
                return False

        wait_until(up, timeout, f"{self.name} app behind nginx", interval=0.2)

    def stop(self) -> None:
        """Kill every process of the region (its data is thrown away) and reap them."""
        self.namespace.kill_all()
        while self.processes:
            with contextlib.suppress(subprocess.TimeoutExpired):
                self.processes.pop().popen.wait(5)
