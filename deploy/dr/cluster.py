"""Private PostgreSQL nodes for the drill: primary, base backup, restore, replica, promote.

Every node lives in a directory of its own (``<home>/data``, its log and socket) and
listens on 127.0.0.1 only. As root, PostgreSQL runs as the ``postgres`` user, which
also owns the WAL archive and the base backup. Nothing here touches any other cluster.
"""

from __future__ import annotations

import contextlib
import glob
import os
import shutil
import signal
import socket
import subprocess
import time
from dataclasses import dataclass, field
from pathlib import Path

import psycopg

CONF_FILE = Path(__file__).resolve().with_name("postgresql.dr.conf")
DATABASE = "highscale"
START_TIMEOUT = 120.0


class ClusterError(RuntimeError):
    """A PostgreSQL node could not be created, started, restored or promoted."""


def postgres_bindir() -> Path:
    """Return the directory of the installed PostgreSQL server binaries."""
    found = shutil.which("initdb")
    candidates = [found] if found else sorted(glob.glob("/usr/lib/postgresql/*/bin/initdb"))
    if not candidates:
        raise ClusterError(
            "PostgreSQL server binaries not found. Install them with: "
            "sudo apt-get install -y postgresql"
        )
    return Path(candidates[-1]).resolve().parent


def run_as() -> str | None:
    """Return the user PostgreSQL must run as: ``postgres`` as root, else the caller."""
    return "postgres" if os.geteuid() == 0 else None


def free_port() -> int:
    """Return a TCP port on 127.0.0.1 that nothing listens on right now."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def owned_dir(path: Path, mode: int = 0o700) -> Path:
    """Create ``path`` (and parents) owned by the PostgreSQL user."""
    path.mkdir(parents=True, exist_ok=True)
    os.chmod(path, mode)
    user = run_as()
    if user:
        shutil.chown(path, user=user, group=user)
    return path


@dataclass
class Node:
    """One PostgreSQL server: its directory, port and, while running, its process."""

    name: str
    home: Path
    bindir: Path
    port: int = field(default_factory=free_port)
    popen: subprocess.Popen[bytes] | None = None

    @property
    def data(self) -> Path:
        return self.home / "data"

    @property
    def url(self) -> str:
        return f"postgres://postgres@127.0.0.1:{self.port}/{DATABASE}"

    @property
    def log(self) -> Path:
        return self.home / "postgres.log"

    def tool(self, name: str, *args: str) -> None:
        """Run a PostgreSQL client tool as the server's user; raise with its output."""
        result = subprocess.run(  # noqa: S603 -- fixed binaries, arguments built here
            [str(self.bindir / name), *args],
            capture_output=True,
            text=True,
            user=run_as(),
            check=False,
        )
        if result.returncode != 0:
            raise ClusterError(f"{name} {' '.join(args)} failed:\n{result.stderr or result.stdout}")

    def start(self) -> None:
        """Start the server and wait until it accepts connections."""
        settings = {
            "port": str(self.port),
            "listen_addresses": "127.0.0.1",
            "unix_socket_directories": str(self.home),
        }
        args = [str(self.bindir / "postgres"), "-D", str(self.data)]
        for key, value in settings.items():
            args += ["-c", f"{key}={value}"]
        with self.log.open("ab") as log:
            self.popen = subprocess.Popen(  # noqa: S603 -- the server binary, our arguments
                args, stdout=log, stderr=subprocess.STDOUT, user=run_as(), start_new_session=True
            )
        self.wait_ready()

    def wait_ready(self, timeout: float = START_TIMEOUT) -> None:
        """Wait until the server accepts connections (after crash or archive recovery)."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.popen is None or self.popen.poll() is not None:
                raise ClusterError(f"{self.name} is not running; see {self.log}")
            ready = subprocess.run(  # noqa: S603 -- fixed binary and arguments
                [str(self.bindir / "pg_isready"), "-q", "-h", "127.0.0.1", "-p", str(self.port)],
                check=False,
            )
            if ready.returncode == 0:
                return
            time.sleep(0.02)
        raise ClusterError(f"{self.name} did not accept connections in {timeout:.0f} s")

    def wait_writable(self, timeout: float = START_TIMEOUT) -> None:
        """Wait until recovery has ended: a hot standby answers reads long before that."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            with psycopg.connect(self.url, autocommit=True, connect_timeout=5) as connection:
                row = connection.execute("SELECT pg_is_in_recovery()").fetchone()
            if row is not None and row[0] is False:
                return
            time.sleep(0.02)
        raise ClusterError(f"{self.name} was still recovering after {timeout:.0f} s")

    def kill(self) -> None:
        """Stop the server the hard way: SIGKILL to its whole process group, no shutdown."""
        self._signal(signal.SIGKILL, timeout=10)

    def stop(self, *, immediate: bool = False) -> None:
        """Stop the server: a fast shutdown (SIGINT), or an immediate one (SIGQUIT, no
        checkpoint, crash recovery on the next start); kill it if that hangs."""
        self._signal(signal.SIGQUIT if immediate else signal.SIGINT, timeout=30)

    def _signal(self, signum: int, *, timeout: float) -> None:
        if self.popen is None:
            return
        with contextlib.suppress(ProcessLookupError):
            os.killpg(self.popen.pid, signum)
        try:
            self.popen.wait(timeout)
        except subprocess.TimeoutExpired:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self.popen.pid, signal.SIGKILL)
            self.popen.wait(10)
        self.popen = None


def archive_settings(archive: Path) -> str:
    """Return the postgresql.conf lines that archive finished WAL segments to ``archive``."""
    return (
        f"\n# Set by the drill: this run's WAL archive.\n"
        f"archive_command = 'test ! -f {archive}/%f && cp %p {archive}/%f'\n"
    )


def create_primary(
    home: Path, archive: Path, bindir: Path, *, wal_segsize_mb: int = 1, durable: bool = True
) -> Node:
    """Initialise and start a primary with deploy/dr/postgresql.dr.conf and WAL archiving.

    Small WAL segments (1 MB rather than 16) keep the archive small: ``archive_timeout``
    closes a segment every few seconds under load. ``durable=False`` (for tests, whose
    data is thrown away) skips every fsync; what reaches the archive is the same.
    """
    node = Node("primary", owned_dir(home, 0o755), bindir)
    node.tool(
        "initdb",
        *("-D", str(node.data), "-A", "trust", "-U", "postgres", "-E", "UTF8"),
        f"--wal-segsize={wal_segsize_mb}",
        *([] if durable else ["--no-sync"]),
    )
    with (node.data / "postgresql.conf").open("a", encoding="utf-8") as conf:
        conf.write(f"\n# From {CONF_FILE.name}.\n" + CONF_FILE.read_text(encoding="utf-8"))
        conf.write(archive_settings(archive))
        if not durable:
            conf.write("fsync = off\n")
    node.start()
    node.tool("createdb", "-h", "127.0.0.1", "-p", str(node.port), "-U", "postgres", DATABASE)
    return node


def base_backup(source: Node, target: Path, *, standby: bool = False, durable: bool = True) -> None:
    """Take a base backup of ``source`` into ``target`` (plain format, with its WAL).

    With ``standby`` the copy is set up as a streaming replica of ``source`` (``-R``);
    ``durable=False`` skips its fsync.
    """
    owned_dir(target.parent, 0o755)
    source.tool(
        "pg_basebackup",
        *("-h", "127.0.0.1", "-p", str(source.port), "-U", "postgres"),
        *("-D", str(target), "-X", "stream", "-c", "fast"),
        *(["-R"] if standby else []),
        *([] if durable else ["--no-sync"]),
    )


def restore(node: Node, backup: Path, archive: Path) -> None:
    """Rebuild ``node``'s data directory from ``backup``, replay the archived WAL, start it.

    ``recovery.signal`` makes the server fetch every archived segment with
    ``restore_command`` until the archive runs out, then end recovery on a new
    timeline and accept writes: recovery to the end of the archived WAL. Return once
    it accepts writes.
    """
    if node.popen is not None:
        raise ClusterError(f"{node.name} is still running; stop it before restoring")
    shutil.rmtree(node.data, ignore_errors=True)
    copy = subprocess.run(  # noqa: S603 -- fixed binary, our paths
        ["cp", "-a", str(backup), str(node.data)],  # noqa: S607 -- coreutils' cp
        capture_output=True,
        text=True,
        user=run_as(),
        check=False,
    )
    if copy.returncode != 0:
        raise ClusterError(f"copying the base backup failed: {copy.stderr}")
    with (node.data / "postgresql.conf").open("a", encoding="utf-8") as conf:
        conf.write(
            "\n# Set by the drill's restore: replay the WAL archive to its end.\n"
            f"restore_command = 'cp {archive}/%f %p'\n"
            "recovery_target_timeline = 'latest'\n"
        )
    (node.data / "recovery.signal").touch()
    user = run_as()
    if user:
        shutil.chown(node.data / "recovery.signal", user=user, group=user)
    node.start()
    node.wait_writable()


def create_replica(primary: Node, home: Path, bindir: Path, *, durable: bool = True) -> Node:
    """Clone ``primary`` with ``pg_basebackup -R`` and start it as a streaming replica."""
    node = Node("replica", owned_dir(home, 0o755), bindir)
    base_backup(primary, node.data, standby=True, durable=durable)
    node.start()
    return node


def promote(node: Node) -> None:
    """Promote a standby to primary and wait until it accepts writes."""
    node.tool("pg_ctl", "promote", "-w", "-t", "60", "-D", str(node.data))
