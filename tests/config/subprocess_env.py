"""Run ``manage.py`` in a child process with an environment the test controls."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

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
