"""The front door: HAProxy on the host, in front of both regions' nginx.

It stands in for the reference's DNS failover (Route 53 health checks): every 500 ms it
asks each region's ``/readyz`` (503 while the region cannot reach a writable primary)
and sends every request to ``r1`` while r1 passes, to the backup ``r2`` once r1 has
failed twice. Responses carry ``X-Region`` (the server that answered). An operator holds
a region out, or lets it back in, through HAProxy's runtime API (``hold`` / ``release``).
"""

from __future__ import annotations

import socket
import subprocess
from pathlib import Path

from deploy.local.binaries import find_binary
from deploy.local.processes import Process, free_port, port_open, wait_until

BACKEND = "regions"


def config(
    *, port: int, admin_socket: Path, primary: tuple[str, str], backup: tuple[str, str]
) -> str:
    """Return HAProxy's configuration: ``(name, host:port)`` of the primary and the backup."""
    return f"""global
    stats socket {admin_socket} mode 600 level admin
    maxconn 2000

defaults
    mode http
    timeout connect 1s
    timeout client 30s
    timeout server 30s
    timeout check 1s
    option redispatch
    retries 0

frontend front
    bind 127.0.0.1:{port}
    default_backend {BACKEND}

backend {BACKEND}
    option httpchk
    http-check send meth GET uri /readyz ver HTTP/1.1 hdr Host 127.0.0.1
    http-check expect status 200
    http-response set-header X-Region %[srv_name]
    default-server inter 500ms fall 2 rise 2 on-marked-down shutdown-sessions
    server {primary[0]} {primary[1]} check
    server {backup[0]} {backup[1]} check backup
"""


class FrontDoor:
    """One HAProxy process and its runtime API."""

    def __init__(self, home: Path, *, primary: tuple[str, str], backup: tuple[str, str]) -> None:
        self.home = home
        self.port = free_port()
        self.admin_socket = home / "admin.sock"
        home.mkdir(parents=True, exist_ok=True)
        self.config_file = home / "haproxy.cfg"
        self.config_file.write_text(
            config(port=self.port, admin_socket=self.admin_socket, primary=primary, backup=backup)
        )
        self.process: Process | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self) -> Process:
        with (self.home / "haproxy.log").open("ab") as log:
            popen = subprocess.Popen(  # noqa: S603 -- HAProxy with our configuration
                [find_binary("haproxy"), "-db", "-f", str(self.config_file)],
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        self.process = Process("front-door", popen)
        wait_until(lambda: port_open("127.0.0.1", self.port), 30, "front door (HAProxy)")
        return self.process

    def command(self, line: str) -> str:
        """Send one runtime API command and return HAProxy's answer."""
        with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as sock:
            sock.settimeout(5)
            sock.connect(str(self.admin_socket))
            sock.sendall(line.encode() + b"\n")
            chunks = []
            while chunk := sock.recv(65536):
                chunks.append(chunk)
        return b"".join(chunks).decode()

    def states(self) -> dict[str, str]:
        """Return each server's operational state as HAProxy reports it (UP, DOWN, MAINT)."""
        found: dict[str, str] = {}
        for line in self.command(f"show stat {BACKEND} 4 -1").splitlines():
            fields = line.split(",")
            if len(fields) > 17 and fields[0] == BACKEND:
                found[fields[1]] = fields[17]
        return found

    def hold(self, server: str) -> None:
        """Keep ``server`` out of rotation whatever its health (maintenance)."""
        self.command(f"set server {BACKEND}/{server} state maint")

    def release(self, server: str) -> None:
        """Let ``server`` back in; it serves again once its health check passes."""
        self.command(f"set server {BACKEND}/{server} state ready")

    def stop(self) -> None:
        if self.process is not None:
            self.process.stop(timeout=5)
            self.process = None
