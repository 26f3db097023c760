"""Throw-away PostgreSQL, Redis and RabbitMQ instances for tests and benchmarks.

Each server gets a free port and a directory under one temporary root, and is stopped
(and the root removed) by ``Servers.stop()``.
"""

from __future__ import annotations

import os
import shutil
import subprocess
from dataclasses import dataclass, field
from pathlib import Path

from deploy.local import postgres, rabbitmq, redis
from deploy.local.processes import (
    Process,
    free_port,
    port_open,
    scratch_dir,
    wait_until,
)

# Throw-away data: fast rather than durable; room for many test connections.
POSTGRES_SETTINGS = {**postgres.REPLICATION, **postgres.NO_FSYNC, "max_connections": "300"}


@dataclass
class Servers:
    """Private server instances and the URLs to reach them."""

    root: Path = field(default_factory=lambda: scratch_dir("highscale-"))
    processes: list[Process] = field(default_factory=list)
    postgres_servers: dict[str, postgres.PostgresServer] = field(default_factory=dict)
    redis_servers: dict[str, tuple[int, str]] = field(default_factory=dict)

    def stop(self) -> None:
        """Stop every server, newest first, and remove their directories."""
        while self.processes:
            self.processes.pop().stop()
        if not os.environ.get("HIGHSCALE_KEEP_SERVER_DIRS"):
            shutil.rmtree(self.root, ignore_errors=True)

    def stop_server(self, name: str) -> None:
        """Stop the running server called ``name``, keeping its data for a restart."""
        for process in [p for p in self.processes if p.name == name]:
            process.stop()
            self.processes.remove(process)

    # --- PostgreSQL -------------------------------------------------------------------

    def start_postgres(self, name: str = "pg") -> str:
        """Start a PostgreSQL primary with replication enabled; return its URL."""
        server = self._postgres_server(name)
        postgres.initdb(server.data)
        return self._run(server)

    def start_replica(self, primary_url: str, name: str = "replica") -> str:
        """Clone the primary with ``pg_basebackup -R`` and start it as a streaming replica."""
        server = self._postgres_server(name)
        postgres.base_backup(postgres.port_of(primary_url), server.data, standby=True)
        return self._run(server)

    def restart_postgres(self, name: str) -> None:
        """Start the stopped PostgreSQL server ``name`` again, on its old port and data."""
        self._run(self.postgres_servers[name])

    def _postgres_server(self, name: str) -> postgres.PostgresServer:
        home = postgres.owned_dir(self.root / name)
        server = postgres.PostgresServer(name, home, settings=POSTGRES_SETTINGS)
        self.postgres_servers[name] = server
        return server

    def _run(self, server: postgres.PostgresServer) -> str:
        self.processes.append(server.start())
        return server.url

    # --- Redis ------------------------------------------------------------------------

    def start_redis(self, name: str = "redis", *, save: str = "") -> str:
        """Start a Redis server and return its URL.

        ``save`` is Redis's snapshot rule (e.g. ``"3600 1"``); empty keeps nothing on disk.
        """
        home = self.root / name
        home.mkdir()
        self.redis_servers[name] = (free_port(), save)
        return self.restart_redis(name)

    def restart_redis(self, name: str) -> str:
        """Start Redis ``name`` (after ``stop_server``) on its port, with what it saved."""
        port, save = self.redis_servers[name]
        home = self.root / name
        popen = subprocess.Popen(  # noqa: S603 -- the server program, our arguments
            redis.command(port, home, save=save),
            stdout=subprocess.DEVNULL,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        self.processes.append(Process(name, popen))
        wait_until(lambda: port_open("127.0.0.1", port), 30, name)
        return f"redis://127.0.0.1:{port}/0"

    # --- RabbitMQ ---------------------------------------------------------------------

    def start_rabbitmq(self, name: str = "rabbitmq", port: int | None = None) -> str:
        """Start a private RabbitMQ node on free ports; return its AMQP URL.

        With ``port`` (after ``stop_server(name)``), start the same node again there.
        """
        _, as_user = rabbitmq.server()
        home = self.root / name
        home.mkdir(exist_ok=port is not None)
        port, dist_port = port or free_port(), free_port()
        node = f"highscale{os.getpid()}@localhost"
        env = {
            **os.environ,
            **rabbitmq.environment(home, node=node, port=port, dist_port=dist_port),
        }
        files = {"enabled_plugins": "[].\n", "rabbitmq.conf": "loopback_users = none\n"}
        rabbitmq.prepare_home(home, files, as_user)
        self.processes.append(rabbitmq.launch(name, home, env, port))
        return f"amqp://guest:guest@127.0.0.1:{port}//"


def broker_url_or_start(servers: Servers) -> str:
    """Return the local RabbitMQ's URL when it runs, else start a private node."""
    if port_open("127.0.0.1", 5672):
        return "amqp://guest:guest@127.0.0.1:5672//"
    return servers.start_rabbitmq()
