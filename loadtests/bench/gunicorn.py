"""Start and stop one gunicorn server per target.

Each server runs in its own session, so stopping it reaches the master and every
worker, and asks the kernel to end it if the benchmark process itself dies.
"""

from __future__ import annotations

import contextlib
import ctypes
import http.client
import os
import signal
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

from deploy.local.processes import ServerError, free_port, wait_until
from loadtests.bench.errors import BenchError
from loadtests.bench.site import BASE_DIR

HOST = "127.0.0.1"
READY_TIMEOUT = 60.0
PR_SET_PDEATHSIG = 1


@dataclass
class GunicornServer:
    """A running gunicorn master and where it listens."""

    target: str
    popen: subprocess.Popen[bytes]
    port: int
    log_path: Path

    @property
    def base_url(self) -> str:
        """Return ``http://127.0.0.1:<port>``."""
        return f"http://{HOST}:{self.port}"

    def log_tail(self, lines: int = 30) -> str:
        """Return the last lines gunicorn and the application wrote."""
        try:
            text = self.log_path.read_text(errors="replace")
        except OSError:
            return ""
        return "\n".join(text.splitlines()[-lines:])

    def wait_ready(self, path: str) -> None:
        """Wait until ``path`` answers 200; raise BenchError if the server dies or hangs."""

        def ready() -> bool:
            if self.popen.poll() is not None:
                raise BenchError(
                    f"gunicorn for {self.target!r} exited with {self.popen.returncode}:\n"
                    f"{self.log_tail()}"
                )
            return _get_status(self.port, path) == 200

        try:
            wait_until(ready, READY_TIMEOUT, f"gunicorn for {self.target!r}")
        except ServerError as exc:
            raise BenchError(f"{exc}:\n{self.log_tail()}") from None

    def stop(self, timeout: float = 10) -> None:
        """Stop the master and its workers; kill them if they do not stop in time."""
        if self.popen.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self.popen.pid, signal.SIGTERM)
            with contextlib.suppress(subprocess.TimeoutExpired):
                self.popen.wait(timeout)
        # Workers left behind by a master that died are still in its process group.
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(self.popen.pid, signal.SIGKILL)
        with contextlib.suppress(subprocess.TimeoutExpired):
            self.popen.wait(5)


def start_gunicorn(
    *,
    target: str,
    app: str,
    workers: int,
    env: dict[str, str],
    workdir: Path,
    config: Path | None = None,
) -> GunicornServer:
    """Start gunicorn (sync workers, no access log) serving ``app`` on a free port.

    With ``config`` (a gunicorn config file such as deploy/gunicorn.conf.py) its
    settings and server hooks apply, except for the worker class and count, the address
    and the log level given here.
    """
    port = free_port()
    log_path = workdir / f"{target}.log"
    # The access log is off unless asked for; the server runs from the private
    # directory so that no ./gunicorn.conf.py is picked up.
    command = [
        sys.executable, "-m", "gunicorn",
        *(["--config", str(config)] if config is not None else []),
        "--worker-class", "sync",
        "--workers", str(workers),
        "--bind", f"{HOST}:{port}",
        "--chdir", str(BASE_DIR),
        "--log-level", "warning",
        app,
    ]  # fmt: skip
    with log_path.open("wb") as log:
        popen = subprocess.Popen(
            command,
            cwd=workdir,
            env=env,
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
            # Safe here: the harness runs no other thread while it forks.
            preexec_fn=_end_with_parent,
        )
    return GunicornServer(target, popen, port, log_path)


def _end_with_parent() -> None:
    """Have the kernel send SIGTERM to this child when the benchmark process dies."""
    if sys.platform == "linux":
        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(PR_SET_PDEATHSIG, signal.SIGTERM)


def _get_status(port: int, path: str) -> int | None:
    """Return the status of ``GET path``, or None when nothing answers yet."""
    connection = http.client.HTTPConnection(HOST, port, timeout=2)
    try:
        connection.request("GET", path)
        return connection.getresponse().status
    except OSError:
        return None
    finally:
        connection.close()
