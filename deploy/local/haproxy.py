"""HAProxy in front of a Patroni cluster: one port for the leader, one for the replicas.

HAProxy knows nothing about PostgreSQL roles: it asks each node's Patroni REST API
(``GET /primary`` answers 200 only on the leader, ``GET /replica`` only on a running
replica) every ``inter`` and routes TCP connections to the nodes that answered 200.
"""

from __future__ import annotations

import csv
import io
import socket
import subprocess
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

from deploy.local.binaries import find_binary
from deploy.local.processes import Process, ServerError, free_port, port_open, wait_until


@dataclass(frozen=True)
class Backend:
    """One PostgreSQL node as HAProxy sees it: its name, SQL port and Patroni REST port."""

    name: str
    port: int
    rest_port: int


def config(
    backends: Sequence[Backend], *, primary_port: int, replica_port: int, stats_socket: Path
) -> str:
    """Return the HAProxy configuration for ``backends``."""
    servers = "".join(
        f"  server {b.name} 127.0.0.1:{b.port} check port {b.rest_port}\n" for b in backends
    )
    listen = (
        # Plain TCP: HAProxy relays the PostgreSQL protocol without reading it.
        "  mode tcp\n"
        # The health check is HTTP against Patroni's REST port, not the SQL port.
        "  option httpchk GET {path}\n"
        "  http-check expect status 200\n"
        # Check every 500 ms; 2 failures mark a node down, 1 success up again. On
        # marked-down, cut the sessions still open to it: a client stuck on the old
        # leader gets an error at once and reconnects to the new one.
        "  default-server inter 500ms fall 2 rise 1 on-marked-down shutdown-sessions\n"
    )
    return (
        "global\n"
        "  maxconn 2000\n"
        f"  stats socket {stats_socket} mode 600 level admin\n"
        "defaults\n"
        # A node that stopped leading refuses connections until its check marks it down
        # (up to fall x inter). HAProxy retries a refused connect 3 times, each after
        # min(timeout connect, 1 s): with 2 s, a connection arriving then was held 3 s
        # and failed, and PgBouncer stopped logging in for server_login_retry. The
        # nodes are on loopback (or a LAN): 200 ms is ample for a connect, the retries
        # end within 0.6 s, and redispatch lets each go to the new leader once it is up.
        "  timeout connect 200ms\n"
        "  option redispatch 1\n"
        # Pooled connections sit idle for long; HAProxy must not cut them.
        "  timeout client 1h\n"
        "  timeout server 1h\n"
        "  timeout check 1s\n"
        "listen primary\n"
        f"  bind 127.0.0.1:{primary_port}\n"
        + listen.format(path="/primary")
        + servers
        + "listen replica\n"
        + f"  bind 127.0.0.1:{replica_port}\n"
        + listen.format(path="/replica")
        + servers
    )


@dataclass
class HAProxy:
    """A running HAProxy: its ports, its directory and process."""

    home: Path
    primary_port: int = field(default_factory=free_port)
    replica_port: int = field(default_factory=free_port)
    process: Process | None = None

    @property
    def stats_socket(self) -> Path:
        return self.home / "haproxy.sock"

    def start(self, backends: Sequence[Backend]) -> None:
        """Write the configuration and start HAProxy in the foreground (``-db``)."""
        self.home.mkdir(parents=True, exist_ok=True)
        path = self.home / "haproxy.cfg"
        path.write_text(
            config(
                backends,
                primary_port=self.primary_port,
                replica_port=self.replica_port,
                stats_socket=self.stats_socket,
            )
        )
        with (self.home / "haproxy.log").open("ab") as log:
            popen = subprocess.Popen(  # noqa: S603 -- the haproxy program, our arguments
                [find_binary("haproxy"), "-db", "-f", str(path)],
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        self.process = Process("haproxy", popen)

        def ready() -> bool:
            if popen.poll() is not None:
                raise ServerError(f"haproxy exited; see {self.home / 'haproxy.log'}")
            return port_open("127.0.0.1", self.primary_port) and self.stats_socket.exists()

        wait_until(ready, 30, "haproxy")

    def stats(self) -> dict[tuple[str, str], dict[str, str]]:
        """Return HAProxy's ``show stat`` rows keyed by (proxy, server).

        ``server`` is ``FRONTEND``/``BACKEND`` for the totals; ``status`` is ``UP`` or
        ``DOWN`` for a node, ``stot`` counts the sessions it has been given.
        """
        with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as sock:
            sock.settimeout(5)
            sock.connect(str(self.stats_socket))
            sock.sendall(b"show stat\n")
            chunks = []
            while chunk := sock.recv(65536):
                chunks.append(chunk)
        text = b"".join(chunks).decode().lstrip("# ")
        return {(row["pxname"], row["svname"]): row for row in csv.DictReader(io.StringIO(text))}

    def up(self, proxy: str) -> list[str]:
        """Return the names of the nodes ``proxy`` (``primary`` or ``replica``) routes to."""
        return sorted(
            server
            for (name, server), row in self.stats().items()
            if name == proxy and server not in ("FRONTEND", "BACKEND") and row["status"] == "UP"
        )

    def stop(self) -> None:
        """Stop HAProxy."""
        if self.process is not None:
            self.process.stop(10)
            self.process = None
