"""Start private PostgreSQL, Redis and RabbitMQ instances for tests and benchmarks.

Each server gets a free port and a temporary directory and is stopped (and its
directory removed) by ``Servers.stop()``. PostgreSQL refuses to run as root, so as root
its processes run as the ``postgres`` user. A missing binary is installed from Debian
when running as root with apt; otherwise the run stops with the exact command to type.
"""

from __future__ import annotations

import contextlib
import glob
import os
import pwd
import shutil
import signal
import socket
import subprocess
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

PACKAGES = {
    "initdb": "postgresql",
    "redis-server": "redis-server",
    "rabbitmq-server": "rabbitmq-server",
}


class ServerError(RuntimeError):
    """A server could not be found or started."""


def _scratch_dir(prefix: str) -> Path:
    """Make a temporary directory that servers running as other users can traverse."""
    path = tempfile.mkdtemp(prefix=prefix)
    os.chmod(path, 0o755)  # noqa: S103 -- scratch space; each server owns its subdirectory
    return Path(path)


def free_port() -> int:
    """Return a TCP port on 127.0.0.1 that nothing listens on right now."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def port_open(host: str, port: int, timeout: float = 0.5) -> bool:
    """Return whether something accepts TCP connections on host:port."""
    with contextlib.suppress(OSError), socket.create_connection((host, port), timeout=timeout):
        return True
    return False


def find_binary(name: str) -> str:
    """Return the path of a server binary, installing its Debian package if possible."""
    path = _locate(name)
    if path:
        return path
    package = PACKAGES.get(name, name)
    command = f"apt-get install -y {package}"
    if os.geteuid() == 0 and shutil.which("apt-get"):
        env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
        subprocess.run(["apt-get", "update", "-q"], check=False, env=env)
        subprocess.run(["apt-get", "install", "-y", "-q", package], check=False, env=env)
        path = _locate(name)
        if path:
            return path
    raise ServerError(f"{name} is not installed. Install it with: sudo {command}")


def _locate(name: str) -> str | None:
    found = shutil.which(name)
    if found:
        return found
    for candidate in sorted(glob.glob(f"/usr/lib/postgresql/*/bin/{name}"), reverse=True):
        return candidate
    return None


def wait_until(check: Callable[[], bool], timeout: float, what: str) -> None:
    """Poll ``check`` until it is true, or raise ServerError after ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if check():
            return
        time.sleep(0.05)
    raise ServerError(f"{what} did not become ready within {timeout:.0f} s")


@dataclass
class Process:
    """A server process we started, and how to stop it."""

    name: str
    popen: subprocess.Popen[bytes]
    stop_signal: int = signal.SIGTERM

    def stop(self, timeout: float = 20) -> None:
        # Each server runs in its own process group, so wrappers that fork the real
        # server (RabbitMQ's) are stopped together with it.
        stop_group(self.popen, timeout, self.stop_signal)


def stop_group(
    popen: subprocess.Popen[bytes], timeout: float = 20, stop_signal: int = signal.SIGTERM
) -> None:
    """Signal the process group of ``popen`` (started with ``start_new_session``), wait
    up to ``timeout`` seconds, then SIGKILL whatever is left of it."""
    with contextlib.suppress(ProcessLookupError):
        os.killpg(popen.pid, stop_signal)
    try:
        popen.wait(timeout)
    except subprocess.TimeoutExpired:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(popen.pid, signal.SIGKILL)
        popen.wait(5)


@dataclass
class Servers:
    """Private server instances and the URLs to reach them."""

    root: Path = field(default_factory=lambda: _scratch_dir("highscale-"))
    processes: list[Process] = field(default_factory=list)
    _postgres_runs: dict[str, tuple[Path, Path, Path, int, str, str | None]] = field(
        default_factory=dict
    )

    def stop(self) -> None:
        """Stop every server, newest first, and remove their directories."""
        while self.processes:
            self.processes.pop().stop()
        if not os.environ.get("HIGHSCALE_KEEP_SERVER_DIRS"):
            shutil.rmtree(self.root, ignore_errors=True)

    # --- PostgreSQL -------------------------------------------------------------------

    def start_postgres(self, name: str = "pg") -> str:
        """Start a PostgreSQL primary with replication enabled; return its URL."""
        initdb = find_binary("initdb")
        bindir = Path(initdb).resolve().parent
        home = self.root / name
        home.mkdir()
        as_user = _postgres_user()
        if as_user:
            shutil.chown(home, user=as_user)
        data = home / "data"
        subprocess.run(
            [initdb, "-D", str(data), "-A", "trust", "-U", "postgres", "-E", "UTF8", "--no-sync"],
            check=True,
            stdout=subprocess.DEVNULL,
            user=as_user,
        )
        port = free_port()
        self._run_postgres(bindir, data, home, port, name, as_user)
        return f"postgres://postgres@127.0.0.1:{port}/highscale"

    def start_replica(self, primary_url: str, name: str = "replica") -> str:
        """Clone the primary with ``pg_basebackup -R`` and start it as a streaming replica."""
        bindir = Path(find_binary("initdb")).resolve().parent
        primary_port = primary_url.rsplit(":", 1)[1].split("/", 1)[0]
        home = self.root / name
        home.mkdir()
        as_user = _postgres_user()
        if as_user:
            shutil.chown(home, user=as_user)
        data = home / "data"
        subprocess.run(
            [
                str(bindir / "pg_basebackup"),
                *("-h", "127.0.0.1", "-p", primary_port, "-U", "postgres"),
                *("-D", str(data), "-R", "-X", "stream", "-c", "fast"),
            ],
            check=True,
            stdout=subprocess.DEVNULL,
            user=as_user,
        )
        port = free_port()
        self._run_postgres(bindir, data, home, port, name, as_user)
        return f"postgres://postgres@127.0.0.1:{port}/highscale"

    def stop_server(self, name: str) -> None:
        """Stop the running server called ``name``, keeping its data for a restart."""
        for process in [p for p in self.processes if p.name == name]:
            process.stop()
            self.processes.remove(process)

    def restart_postgres(self, name: str) -> None:
        """Start the stopped PostgreSQL server ``name`` again, on its old port and data."""
        self._run_postgres(*self._postgres_runs[name])

    def _run_postgres(
        self, bindir: Path, data: Path, home: Path, port: int, name: str, as_user: str | None
    ) -> None:
        self._postgres_runs[name] = (bindir, data, home, port, name, as_user)
        settings = {
            "listen_addresses": "127.0.0.1",
            "port": str(port),
            "unix_socket_directories": str(home),
            "max_connections": "300",
            "fsync": "off",
            "full_page_writes": "off",
            "synchronous_commit": "off",
            "wal_level": "replica",
            "max_wal_senders": "10",
            "hot_standby": "on",
        }
        args = [str(bindir / "postgres"), "-D", str(data)]
        for key, value in settings.items():
            args += ["-c", f"{key}={value}"]
        log = open(home / "postgres.log", "wb")  # noqa: SIM115 -- kept open for the server's life
        popen = subprocess.Popen(
            args, stdout=log, stderr=subprocess.STDOUT, user=as_user, start_new_session=True
        )
        self.processes.append(Process(name, popen, stop_signal=signal.SIGINT))
        pg_isready = str(bindir / "pg_isready")

        def ready() -> bool:
            if popen.poll() is not None:
                raise ServerError(f"{name} exited; see {home / 'postgres.log'}")
            result = subprocess.run(
                [pg_isready, "-q", "-h", "127.0.0.1", "-p", str(port)], check=False
            )
            return result.returncode == 0

        wait_until(ready, 60, name)

    # --- Redis ------------------------------------------------------------------------

    def start_redis(self, name: str = "redis") -> str:
        """Start a Redis server that keeps nothing on disk; return its URL."""
        binary = find_binary("redis-server")
        home = self.root / name
        home.mkdir()
        port = free_port()
        args = [
            binary, "--port", str(port), "--bind", "127.0.0.1", "--save", "",
            "--appendonly", "no", "--dir", str(home),
        ]  # fmt: skip
        popen = subprocess.Popen(
            args, stdout=subprocess.DEVNULL, stderr=subprocess.STDOUT, start_new_session=True
        )
        self.processes.append(Process(name, popen))
        wait_until(lambda: port_open("127.0.0.1", port), 30, name)
        return f"redis://127.0.0.1:{port}/0"

    # --- RabbitMQ ---------------------------------------------------------------------

    def start_rabbitmq(self, name: str = "rabbitmq", port: int | None = None) -> str:
        """Start a private RabbitMQ node on free ports; return its AMQP URL.

        With ``port`` (after ``stop_server(name)``), start the same node again there.
        """
        binary = find_binary("rabbitmq-server")
        # Debian's /usr/sbin wrapper re-launches the server through `su`, in a session
        # of its own that would outlive us; run the real script as `rabbitmq` instead.
        real = Path("/usr/lib/rabbitmq/bin/rabbitmq-server")
        as_user = None
        if real.exists():
            binary = str(real)
            as_user = "rabbitmq" if os.geteuid() == 0 and _user_exists("rabbitmq") else None
        home = self.root / name
        home.mkdir(exist_ok=port is not None)
        port, dist_port = port or free_port(), free_port()
        node = f"highscale{os.getpid()}@localhost"
        env = {
            **os.environ,
            "RABBITMQ_NODENAME": node,
            "RABBITMQ_NODE_IP_ADDRESS": "127.0.0.1",
            "RABBITMQ_NODE_PORT": str(port),
            "RABBITMQ_DIST_PORT": str(dist_port),
            "RABBITMQ_MNESIA_BASE": str(home / "mnesia"),
            "RABBITMQ_LOG_BASE": str(home / "log"),
            "RABBITMQ_ENABLED_PLUGINS_FILE": str(home / "enabled_plugins"),
            "RABBITMQ_CONFIG_FILE": str(home / "rabbitmq"),
            "RABBITMQ_PID_FILE": str(home / "rabbitmq.pid"),
            "ERL_CRASH_DUMP": str(home / "erl_crash.dump"),
            "HOME": str(home),
        }
        (home / "enabled_plugins").write_text("[].\n")
        (home / "rabbitmq.conf").write_text("loopback_users = none\n")
        if as_user:
            for path in (home, *home.iterdir()):
                shutil.chown(path, user=as_user)
        log = open(home / "server.log", "wb")  # noqa: SIM115 -- kept open for the server's life
        popen = subprocess.Popen(
            [binary],
            env=env,
            stdout=log,
            stderr=subprocess.STDOUT,
            user=as_user,
            cwd=home,
            start_new_session=True,
        )
        self.processes.append(Process(name, popen))

        def ready() -> bool:
            if popen.poll() is not None:
                raise ServerError(f"{name} exited; see {home / 'server.log'}")
            return port_open("127.0.0.1", port)

        wait_until(ready, 90, name)
        return f"amqp://guest:guest@127.0.0.1:{port}//"


def _user_exists(user: str) -> bool:
    try:
        pwd.getpwnam(user)
    except KeyError:
        return False
    return True


def _postgres_user() -> str | None:
    """Return the user to run PostgreSQL as: ``postgres`` when we are root, else us."""
    return "postgres" if os.geteuid() == 0 else None


def broker_url_or_start(servers: Servers) -> str:
    """Return the local RabbitMQ's URL when it runs, else start a private node."""
    if port_open("127.0.0.1", 5672):
        return "amqp://guest:guest@127.0.0.1:5672//"
    return servers.start_rabbitmq()
