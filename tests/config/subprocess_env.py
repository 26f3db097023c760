"""Run ``manage.py`` in a child process with an environment the test controls."""

from __future__ import annotations

import contextlib
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import requests

from deploy.local.processes import ServerError, free_port, stop_group, wait_until

ROOT = Path(__file__).resolve().parents[2]
# The suite's own service URLs and Django settings must not leak into the child.
DROPPED = (
    "DATABASE_URL",
    "DATABASE_REPLICA_URLS",
    "REDIS_URL",
    "REDIS_SENTINELS",
    "REDIS_SENTINEL_MASTER",
    "CELERY_BROKER_URL",
)


def embedded_environment(sqlite_path: Path, **extra: str) -> dict[str, str]:
    """Return os.environ without service URLs and DJANGO_* variables, plus ``extra``."""
    env = {
        key: value
        for key, value in os.environ.items()
        if key not in DROPPED and not key.startswith("DJANGO_") and key != "RATELIMIT_OVERRIDES"
    }
    env["SQLITE_PATH"] = str(sqlite_path)
    env.update(extra)
    return env


def manage(
    env: dict[str, str], *args: str, timeout: float = 120
) -> subprocess.CompletedProcess[str]:
    """Run ``manage.py *args`` from the project root and capture its output."""
    return subprocess.run(
        [sys.executable, "manage.py", *args],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )


@contextlib.contextmanager
def runserver(env: dict[str, str], log_path: Path) -> Iterator[str]:
    """Serve ``manage.py runserver`` on a free port until the block ends; yield its URL."""
    port = free_port()
    base_url = f"http://127.0.0.1:{port}"
    with log_path.open("wb") as log:
        server = subprocess.Popen(
            [sys.executable, "manage.py", "runserver", f"127.0.0.1:{port}", "--noreload"],
            cwd=ROOT,
            env=env,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    try:

        def up() -> bool:
            if server.poll() is not None:
                raise ServerError(f"runserver exited: {log_path.read_text()}")
            try:
                return requests.get(f"{base_url}/healthz", timeout=1).status_code == 200
            except requests.ConnectionError:
                return False

        wait_until(up, 60, "runserver")
        yield base_url
    finally:
        stop_group(server, timeout=10)
