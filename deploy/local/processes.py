"""Ports, readiness waits and process-group stops shared by every local server."""

from __future__ import annotations

import contextlib
import os
import secrets
import signal
import socket
import subprocess
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path


class ServerError(RuntimeError):
    """A server could not be found, started or driven; the message says what to do."""


# A port is picked seconds before its server binds it. A port from the kernel's
# ephemeral range (what bind to port 0 returns) can meanwhile become the local end of
# any outgoing connection, and engines starting side by side (Patroni, etcd, Erlang,
# Sentinel) open many: the server then fails with "address already in use". Ports
# below that range are never handed to outgoing connections.
_LOWEST_PORT = 10000
# A port picked but not yet bound is invisible to a bind test, so a second process
# picking ports at the same time could hand it out again: a test picks the stack's
# nginx port, then `make stack-ha` in a child process picked the same number for a
# Sentinel (CI, 2026-12-07). Every pick is therefore reserved machine-wide by creating
# a file named after the port; a reservation older than this is void, by then its
# server has bound the port or never will.
_RESERVATION_SECONDS = 30 * 60


def _listen_ports() -> range:
    """Return the ports below the kernel's ephemeral range (empty if it starts too low)."""
    try:
        low = int(Path("/proc/sys/net/ipv4/ip_local_port_range").read_text().split()[0])
    except (OSError, ValueError, IndexError):
        return range(0)
    return range(_LOWEST_PORT, low)


def _bindable(port: int) -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        try:
            sock.bind(("127.0.0.1", port))
        except OSError:
            return False
    return True


def _reservations() -> Path:
    path = Path(tempfile.gettempdir()) / "highscale-ports"
    with contextlib.suppress(FileExistsError):
        path.mkdir()
        path.chmod(0o1777)  # processes of every user reserve here
    return path


def _reserve(port: int) -> bool:
    """Claim ``port`` for this pick; False if another pick holds it and is recent."""
    try:
        marker = _reservations() / str(port)
        os.close(os.open(marker, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o644))
        return True
    except FileExistsError:
        pass
    except OSError:
        return True  # no shared directory to coordinate in: the bind test alone decides
    try:
        if time.time() - marker.stat().st_mtime < _RESERVATION_SECONDS:
            return False
        os.utime(marker)  # void: claim it anew
    except OSError:
        return False
    return True


def free_port() -> int:
    """Return a TCP port on 127.0.0.1 that nothing listens on right now.

    It lies outside the ephemeral range where the kernel allows, and no process on
    this machine is handed it again for half an hour (see ``_RESERVATION_SECONDS``).
    """
    ports = _listen_ports()
    for _ in range(200 if len(ports) > 1000 else 0):
        port = ports[secrets.randbelow(len(ports))]
        if _bindable(port) and _reserve(port):  # the reservation file is the exclusion
            return port
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def port_open(host: str, port: int, timeout: float = 0.5) -> bool:
    """Return whether something accepts TCP connections on host:port."""
    with contextlib.suppress(OSError), socket.create_connection((host, port), timeout=timeout):
        return True
    return False


def wait_until(
    check: Callable[[], bool], timeout: float, what: str, *, interval: float = 0.05
) -> None:
    """Poll ``check`` until it is true, or raise ServerError after ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if check():
            return
        time.sleep(interval)
    raise ServerError(f"{what} did not become ready within {timeout:.0f} s")


def scratch_dir(prefix: str) -> Path:
    """Make a temporary directory that servers running as other users can traverse."""
    path = tempfile.mkdtemp(prefix=prefix)
    os.chmod(path, 0o755)  # noqa: S103 -- scratch space; each server owns its subdirectory
    return Path(path)


def processes_mentioning(path: Path) -> list[str]:
    """Return the command lines of running processes that mention ``path`` (leak checks)."""
    found = []
    for cmdline in Path("/proc").glob("[0-9]*/cmdline"):
        with contextlib.suppress(OSError):
            command = cmdline.read_bytes().replace(b"\0", b" ").decode(errors="replace")
            if str(path) in command:
                found.append(command)
    return found


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
        popen.wait(10)


@dataclass
class Process:
    """A server process started in a session of its own, and how to stop it."""

    name: str
    popen: subprocess.Popen[bytes]
    stop_signal: int = signal.SIGTERM

    def stop(self, timeout: float = 20) -> None:
        """Stop the whole process group, so that a wrapper's forked server stops too."""
        stop_group(self.popen, timeout, self.stop_signal)
