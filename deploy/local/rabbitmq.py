"""A local RabbitMQ node: which script to run, as whom, and its environment and files."""

from __future__ import annotations

import contextlib
import os
import pwd
import shutil
from collections.abc import Mapping
from pathlib import Path

from deploy.local.binaries import find_binary

# Debian's /usr/sbin wrapper re-launches the server through `su`, in a session of its
# own that would outlive the stop; the real script is run as `rabbitmq` instead.
REAL_SCRIPT = Path("/usr/lib/rabbitmq/bin/rabbitmq-server")


def server() -> tuple[str, str | None]:
    """Return the rabbitmq-server script to run and the user to run it as (None: us)."""
    binary = find_binary("rabbitmq-server")
    if not REAL_SCRIPT.exists():
        return binary, None
    return str(REAL_SCRIPT), "rabbitmq" if os.geteuid() == 0 and _user_exists("rabbitmq") else None


def environment(home: Path, *, node: str, port: int, dist_port: int) -> dict[str, str]:
    """Return the variables that give node ``node`` its ports and keep its files in ``home``."""
    return {
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


def prepare_home(home: Path, files: Mapping[str, str], user: str | None) -> None:
    """Write ``files`` (``enabled_plugins``, ``rabbitmq.conf``, …) into ``home`` and hand
    everything under it to ``user``."""
    home.mkdir(parents=True, exist_ok=True)
    for name, text in files.items():
        (home / name).write_text(text)
    if user:
        for path in (home, *home.rglob("*")):
            with contextlib.suppress(LookupError, OSError):
                shutil.chown(path, user=user)


def _user_exists(user: str) -> bool:
    try:
        pwd.getpwnam(user)
    except KeyError:
        return False
    return True
