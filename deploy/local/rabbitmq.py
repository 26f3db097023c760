"""A local RabbitMQ node: which script to run, as whom, and its environment and files."""

from __future__ import annotations

import contextlib
import os
import pwd
import shutil
import subprocess
from collections.abc import Mapping
from pathlib import Path

from deploy.local.binaries import find_binary
from deploy.local.processes import Process, ServerError, port_open, wait_until

# Debian's /usr/sbin wrapper re-launches the server through `su`, in a session of its
# own that would outlive the stop; the real script is run as `rabbitmq` instead.
REAL_SCRIPT = Path("/usr/lib/rabbitmq/bin/rabbitmq-server")
REAL_CTL = REAL_SCRIPT.with_name("rabbitmqctl")
# How long a node may take to boot on a loaded machine.
START_TIMEOUT = 90


def server() -> tuple[str, str | None]:
    """Return the rabbitmq-server script to run and the user to run it as (None: us)."""
    binary = find_binary("rabbitmq-server")
    if not REAL_SCRIPT.exists():
        return binary, None
    return str(REAL_SCRIPT), "rabbitmq" if os.geteuid() == 0 and _user_exists("rabbitmq") else None


def ctl() -> tuple[str, str | None]:
    """Return the rabbitmqctl script to run and the user to run it as, like ``server``."""
    binary, as_user = server()
    if binary != str(REAL_SCRIPT):
        return str(Path(binary).with_name("rabbitmqctl")), None
    return str(REAL_CTL), as_user


def environment(home: Path, *, node: str, port: int, dist_port: int) -> dict[str, str]:
    """Return the variables that give node ``node`` its ports and keep its files in ``home``.

    The machine's own rabbitmq-env.conf (the system node's name) is replaced by an empty
    one in ``home``, which ``prepare_home`` writes.
    """
    return {
        "RABBITMQ_CONF_ENV_FILE": str(home / "rabbitmq-env.conf"),
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
    for name, text in {"rabbitmq-env.conf": "", **files}.items():
        (home / name).write_text(text)
    if user:
        for path in (home, *home.rglob("*")):
            with contextlib.suppress(LookupError, OSError):
                shutil.chown(path, user=user)


def launch(name: str, home: Path, env: Mapping[str, str], port: int) -> Process:
    """Start the node whose environment is ``env`` (from ``environment``) and files are in
    ``home``; return once it accepts AMQP connections on ``port``."""
    process = spawn(name, home, env)
    await_port(process, home, port)
    return process


def spawn(name: str, home: Path, env: Mapping[str, str]) -> Process:
    """Start a node in a session of its own, logging to ``home``/server.log; do not wait."""
    binary, as_user = server()
    with open(home / "server.log", "ab") as log:
        popen = subprocess.Popen(  # noqa: S603 -- the server script, no arguments
            [binary],
            env=dict(env),
            stdout=log,
            stderr=subprocess.STDOUT,
            user=as_user,
            cwd=home,
            start_new_session=True,
        )
    return Process(name, popen)


def await_port(process: Process, home: Path, port: int) -> None:
    """Wait until the node accepts AMQP connections on ``port``; stop it and raise if it
    exits or stays silent past START_TIMEOUT."""

    def ready() -> bool:
        if process.popen.poll() is not None:
            raise ServerError(f"{process.name} exited; see {home / 'server.log'}")
        return port_open("127.0.0.1", port)

    try:
        wait_until(ready, START_TIMEOUT, process.name)
    except BaseException:
        process.stop()
        raise


def _user_exists(user: str) -> bool:
    try:
        pwd.getpwnam(user)
    except KeyError:
        return False
    return True
