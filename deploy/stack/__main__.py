"""Launch the stack: ``python -m deploy.stack`` (what ``make stack`` runs).

``--sharded`` (``make stack-sharded``, or ``STACK_SHARDED=1``) adds the shard servers and
replaces Redis by a 3+3 Redis Cluster; its data lives under ``var/stack-sharded``.

Prepares ``STACK_VAR_DIR`` (configuration files, secret key, directories owned by the
users the servers run as), then runs every process of ``deploy/stack/services.py``
under honcho's manager, with logs prefixed by process. Ctrl-C or SIGTERM stops them in
tier order; once honcho returns, anything still alive from this run is killed.
"""

from __future__ import annotations

import contextlib
import os
import secrets
import shutil
import signal
import sys
from pathlib import Path

from honcho import manager as honcho_manager  # type: ignore[import-untyped]
from honcho.printer import Printer  # type: ignore[import-untyped]

from deploy.local import nginx, pgbouncer, rabbitmq
from deploy.local.postgres import owned_dir, run_as
from deploy.local.processes import ServerError, port_open
from deploy.stack.layout import ROOT, Layout, StackError, run
from deploy.stack.services import app_env, services
from deploy.stack.supervise import alive, read_records
from deploy.workers import POOLS

# honcho kills what is still running this long after its SIGTERM; the supervisors stop
# their processes tier after tier well within it (gunicorn drains for up to 25 s).
KILL_WAIT_SECONDS = 150


def main() -> int:
    if "--sharded" in sys.argv[1:]:
        # Exported, so every supervisor reads the same layout.
        os.environ["STACK_SHARDED"] = "1"
    try:
        layout = _resolve_broker(Layout.from_env())
        _refuse_a_running_stack(layout)
        _refuse_busy_ports(layout)
        os.environ.update(_exported(layout))
        processes = services(layout)  # finds every binary first, or says what to install
        _prepare(layout)
    except ServerError as error:
        print(f"make stack: {error}", file=sys.stderr)
        return 2
    honcho_manager.KILL_WAIT = KILL_WAIT_SECONDS
    manager = honcho_manager.Manager(Printer(sys.stdout))
    python = sys.executable
    for service in processes:
        manager.add_process(
            service.name, f"exec {python} -m deploy.stack.supervise {service.name}", cwd=ROOT
        )
    _announce(layout)
    manager.loop()
    _sweep(layout)
    return int(manager.returncode or 0)


def _resolve_broker(layout: Layout) -> Layout:
    """Use the RabbitMQ already listening on the broker port, if any; else run our own."""
    if layout.broker_url or not port_open("127.0.0.1", layout.rabbitmq_port):
        return layout
    url = f"amqp://guest:guest@127.0.0.1:{layout.rabbitmq_port}//"
    return Layout.from_env({**os.environ, "STACK_BROKER_URL": url})


def _exported(layout: Layout) -> dict[str, str]:
    """Return the variables every process inherits: the resolved layout and the app's."""
    return {
        "STACK_VAR_DIR": str(layout.var),
        "STACK_BROKER_URL": layout.broker_url,
        "STACK_SHARDED": "1" if layout.sharded else "",
        **app_env(layout, _secret_key(layout)),
    }


def _secret_key(layout: Layout) -> str:
    """Return the key generated into the var directory on the first run."""
    path = layout.var / "secret_key"
    if not path.exists():
        layout.var.mkdir(parents=True, exist_ok=True)
        path.write_text(secrets.token_urlsafe(50))
        path.chmod(0o600)
    return path.read_text().strip()


def _refuse_a_running_stack(layout: Layout) -> None:
    for name, record in read_records(layout).items():
        for pid in (record.get("wrapper"), record.get("child")):
            if alive(pid):
                raise StackError(
                    f"a stack is already running from {layout.var} ({name}, pid {pid}); "
                    f"stop it first (Ctrl-C in its terminal, or kill {pid})"
                )
    shutil.rmtree(layout.run_dir, ignore_errors=True)


def _refuse_busy_ports(layout: Layout) -> None:
    ports = {
        "STACK_NGINX_PORT": layout.nginx_port,
        "STACK_PGBOUNCER_PORT": layout.pgbouncer_port,
        "STACK_WORKER_METRICS_PORT": layout.worker_metrics_port,
        "STACK_WEBHOOK_WORKER_METRICS_PORT": layout.webhook_worker_metrics_port,
        **{f"STACK_WEB_PORTS ({port})": port for port in layout.web_ports},
        **{f"STACK_SHARD_PORTS ({port})": port for port in layout.shard_ports},
        **{f"STACK_REDIS_CLUSTER_PORTS ({port})": port for port in layout.redis_cluster_ports},
        **{
            f"STACK_REDIS_CLUSTER_PORTS ({port} + 10000, its bus)": layout.cluster_bus_port(port)
            for port in layout.redis_cluster_ports
        },
    }
    if layout.own_data:
        ports["STACK_POSTGRES_PORT"] = layout.postgres_port
        ports["STACK_REPLICA_PORT"] = layout.replica_port
        ports["STACK_PGBOUNCER_REPLICA_PORT"] = layout.pgbouncer_replica_port
        if not layout.sharded:
            ports["STACK_REDIS_PORT"] = layout.redis_port
    if layout.own_broker:
        ports["STACK_RABBITMQ_PORT"] = layout.rabbitmq_port
    busy = [f"{name}={port}" for name, port in ports.items() if port_open("127.0.0.1", port)]
    if busy:
        raise StackError(f"ports already in use: {', '.join(busy)}; free them or move them")


def _prepare(layout: Layout) -> None:
    """Create the directories and configuration files every process expects."""
    layout.var.mkdir(parents=True, exist_ok=True)
    # Servers running as other users (postgres, rabbitmq) must reach their directories.
    layout.var.chmod(0o755)
    _refuse_data_postgres_cannot_reach(layout)
    layout.run_dir.mkdir(parents=True, exist_ok=True)
    _write_pgbouncer(layout, "pgbouncer", layout.postgres_port)
    if layout.own_data:
        shards = [f"shard{number}" for number, _ in enumerate(layout.shard_ports, 1)]
        for name in ("postgres", "replica", *shards):
            owned_dir(layout.postgres_home(name))
        _write_pgbouncer(layout, "pgbouncer-replica", layout.replica_port)
        layout.redis_home.mkdir(exist_ok=True)
        for port in layout.redis_cluster_ports:
            layout.redis_node_home(port).mkdir(exist_ok=True)
    if layout.own_broker:
        _prepare_rabbitmq(layout)
    workers = [pool.name for pool in POOLS]
    for process in (*workers, *(f"web{i}" for i, _ in enumerate(layout.web_ports, 1))):
        layout.metrics_dir(process).mkdir(parents=True, exist_ok=True)
    _write_nginx(layout)


def _refuse_data_postgres_cannot_reach(layout: Layout) -> None:
    """Stop before initdb when PostgreSQL's user cannot enter the var directory.

    As root the servers run as ``postgres``; a checkout under a closed home (``0700``)
    would otherwise fail deep inside initdb with a bare "Permission denied".
    """
    user = run_as()
    if user and run(["test", "-x", str(layout.var)], user=user, check=False).returncode:
        raise StackError(
            f"the {user} user cannot enter {layout.var} (a parent directory is closed to "
            f"it); set STACK_VAR_DIR to a directory it can reach, e.g. "
            f"STACK_VAR_DIR=/var/tmp/highscale-stack make stack"
        )


def _write_pgbouncer(layout: Layout, name: str, server_port: int) -> None:
    """Write the shipped PgBouncer config, pointed at this stack's server, into its home."""
    port = layout.pgbouncer_port if name == "pgbouncer" else layout.pgbouncer_replica_port
    pgbouncer.write_config(
        layout.pgbouncer_home(name),
        listen_port=port,
        server_host="127.0.0.1",
        server_port=server_port,
    )


def _prepare_rabbitmq(layout: Layout) -> None:
    home = layout.rabbitmq_home
    home.mkdir(exist_ok=True)
    # The system's cookie lets `rabbitmqctl -n <node>` talk to this node too.
    system_cookie = Path("/var/lib/rabbitmq/.erlang.cookie")
    with contextlib.suppress(OSError):
        shutil.copyfile(system_cookie, home / ".erlang.cookie")
        (home / ".erlang.cookie").chmod(0o400)
    management = layout.rabbitmq_port + 10000
    files = {
        "enabled_plugins": "[rabbitmq_management].\n",
        "rabbitmq.conf": (
            "loopback_users = none\nmanagement.tcp.ip = 127.0.0.1\n"
            f"management.tcp.port = {management}\n"
        ),
    }
    rabbitmq.prepare_home(home, files, rabbitmq.server()[1])


def _write_nginx(layout: Layout) -> None:
    """Write the shipped nginx config with this stack's ports into the nginx prefix."""
    nginx.write_config(
        layout.nginx_prefix, listen=f"127.0.0.1:{layout.nginx_port}", web_ports=layout.web_ports
    )


def _announce(layout: Layout) -> None:
    base = f"http://127.0.0.1:{layout.nginx_port}"
    broker = layout.broker() if not layout.own_broker else "its own RabbitMQ node"
    if layout.sharded:
        print(
            f"make stack-sharded: orders over shards on ports "
            f"{', '.join(map(str, layout.shard_ports))}, Redis Cluster "
            f"{layout.redis_cluster_nodes}",
            flush=True,
        )
    print(
        f"make stack: {base} (nginx → gunicorn on {', '.join(map(str, layout.web_ports))}), "
        f"broker: {broker}, data: {layout.var}. Ctrl-C stops everything.",
        flush=True,
    )


def _sweep(layout: Layout) -> None:
    """Kill anything of this run that outlived honcho (a supervisor killed by force)."""
    for record in read_records(layout).values():
        child, wrapper = record.get("child"), record.get("wrapper")
        if alive(child) and child:
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.killpg(child, signal.SIGKILL)
        if alive(wrapper) and wrapper:
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.kill(wrapper, signal.SIGKILL)


if __name__ == "__main__":
    sys.exit(main())
