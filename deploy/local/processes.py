"""Ports, readiness waits and process-group stops shared by every local server."""

from __future__ import annotations

import contextlib
import os
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
