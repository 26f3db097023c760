"""PostgreSQL primitives: initdb, base backups, a server process and its readiness.

PostgreSQL refuses to run as root, so as root every server and tool runs as the
``postgres`` user, which then owns the directories made with ``owned_dir``. Servers
listen on 127.0.0.1 only, with their socket in their own home directory.
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

import psycopg

from deploy.local.binaries import find_binary
from deploy.local.processes import Process, ServerError, free_port, stop_group, wait_until

DATABASE = "highscale"
START_TIMEOUT = 120.0
# For data that is thrown away: no fsync anywhere.
NO_FSYNC = {"fsync": "off", "full_page_writes": "off", "synchronous_commit": "off"}
# A primary that feeds streaming replicas and pg_basebackup, and a hot standby.
REPLICATION = {"wal_level": "replica", "max_wal_senders": "10", "hot_standby": "on"}


def run_as() -> str | None:
    """Return the user PostgreSQL runs as: ``postgres`` when we are root, else us."""
    return "postgres" if os.geteuid() == 0 else None


def program(name: str) -> str:
    """Return a PostgreSQL program from the same installation as ``initdb``."""
    return str(Path(find_binary("initdb")).resolve().parent / name)


def url(port: int, database: str = DATABASE) -> str:
    """Return the URL of ``database`` on the local server listening on ``port``."""
    return f"postgres://postgres@127.0.0.1:{port}/{database}"


def port_of(server_url: str) -> int:
    """Return the port of a ``postgres://…@127.0.0.1:<port>/…`` URL."""
    return int(server_url.rsplit(":", 1)[1].split("/", 1)[0])


def owned_dir(path: Path, mode: int = 0o755) -> Path:
    """Create ``path`` (and parents) with ``mode``, owned by the PostgreSQL user."""
    path.mkdir(parents=True, exist_ok=True)
    os.chmod(path, mode)
    user = run_as()
    if user:
        shutil.chown(path, user=user, group=user)
    return path


def tool(name: str, *args: str) -> None:
    """Run PostgreSQL program ``name`` as the server's user; raise with its output."""
    result = subprocess.run(  # noqa: S603 -- a PostgreSQL program, arguments built here
        [program(name), *args], capture_output=True, text=True, user=run_as(), check=False
    )
    if result.returncode != 0:
        raise ServerError(f"{name} {' '.join(args)} failed:\n{result.stderr or result.stdout}")


def initdb(data: Path, *options: str, sync: bool = False) -> None:
    """Create a cluster in ``data``: user ``postgres`` trusted on loopback, UTF-8.

    ``sync=False`` skips the final fsync of the new files.
    """
    args = ["-D", str(data), "-A", "trust", "-U", "postgres", "-E", "UTF8", *options]
    tool("initdb", *args, *([] if sync else ["--no-sync"]))


def base_backup(source_port: int, target: Path, *, standby: bool, sync: bool = True) -> None:
    """Copy the server on ``source_port`` into ``target`` (plain format, with its WAL).

    With ``standby`` the copy is set up as a streaming replica of the source (``-R``);
    ``sync=False`` skips its fsync.
    """
    tool(
        "pg_basebackup",
        *("-h", "127.0.0.1", "-p", str(source_port), "-U", "postgres"),
        *("-D", str(target), "-X", "stream", "-c", "fast"),
        *(["-R"] if standby else []),
        *([] if sync else ["--no-sync"]),
    )


def is_ready(port: int) -> bool:
    """Return whether the local server on ``port`` accepts connections (pg_isready)."""
    command = [program("pg_isready"), "-q", "-h", "127.0.0.1", "-p", str(port)]
    command += ["-U", "postgres", "-d", "postgres"]
    return subprocess.run(command, check=False).returncode == 0  # noqa: S603 -- fixed program


@dataclass
class PostgresServer:
    """One PostgreSQL server: its home (``data``, log, socket), port and process."""

    name: str
    home: Path
    port: int = field(default_factory=free_port)
    # ``-c`` settings on top of the address, port and socket directory.
    settings: Mapping[str, str] = field(default_factory=dict)
    process: Process | None = None

    @property
    def data(self) -> Path:
        return self.home / "data"

    @property
    def url(self) -> str:
        return url(self.port)

    @property
    def log(self) -> Path:
        return self.home / "postgres.log"

    def command(self) -> list[str]:
        """Return the command line that runs this server in the foreground."""
        settings = {
            "port": str(self.port),
            "listen_addresses": "127.0.0.1",
            "unix_socket_directories": str(self.home),
            **self.settings,
        }
        command = [program("postgres"), "-D", str(self.data)]
        for key, value in settings.items():
            command += ["-c", f"{key}={value}"]
        return command

    def start(self, timeout: float = START_TIMEOUT) -> Process:
        """Start the server and wait until it accepts connections; return its process."""
        with self.log.open("ab") as log:
            popen = subprocess.Popen(  # noqa: S603 -- the server program, our arguments
                self.command(),
                stdout=log,
                stderr=subprocess.STDOUT,
                user=run_as(),
                start_new_session=True,
            )
        # SIGINT is PostgreSQL's fast shutdown.
        self.process = Process(self.name, popen, stop_signal=signal.SIGINT)
        self.wait_ready(timeout)
        return self.process

    def wait_ready(self, timeout: float = START_TIMEOUT) -> None:
        """Wait until the server accepts connections (also after crash or archive recovery)."""

        def ready() -> bool:
            if self.process is None or self.process.popen.poll() is not None:
                raise ServerError(f"{self.name} is not running; see {self.log}")
            return is_ready(self.port)

        wait_until(ready, timeout, f"{self.name} (PostgreSQL)", interval=0.02)

    def wait_writable(self, timeout: float = START_TIMEOUT) -> None:
        """Wait until recovery has ended: a hot standby answers reads long before that."""

        def writable() -> bool:
            with psycopg.connect(self.url, autocommit=True, connect_timeout=5) as connection:
                row = connection.execute("SELECT pg_is_in_recovery()").fetchone()
            return row is not None and row[0] is False

        wait_until(writable, timeout, f"{self.name} leaving recovery", interval=0.02)

    def stop(self, *, immediate: bool = False, timeout: float = 30) -> None:
        """Stop the server: a fast shutdown (SIGINT), or an immediate one (SIGQUIT, no
        checkpoint, crash recovery on the next start); kill it if that hangs."""
        self._signal(signal.SIGQUIT if immediate else signal.SIGINT, timeout)

    def kill(self) -> None:
        """Stop the server the hard way: SIGKILL to its whole process group, no shutdown."""
        self._signal(signal.SIGKILL, 10)

    def _signal(self, signum: int, timeout: float) -> None:
        if self.process is not None:
            stop_group(self.process.popen, timeout, signum)
            self.process = None
