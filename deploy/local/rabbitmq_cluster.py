"""A private RabbitMQ cluster (3 nodes by default) on free loopback ports in one directory.

Each node is a Debian rabbitmq-server with its own name, ports, data and logs; all of
them register with a private epmd (``ERL_EPMD_PORT``), so neither the machine's own node
on 5672 nor its epmd on 4369 is touched. The nodes share one Erlang cookie, written into
every node's ``HOME`` with mode 400 as Erlang requires.

All nodes boot at once; nodes 2..N name node 1 as their peer (RabbitMQ's classic config
peer discovery) and join it as they boot, waiting for it to come up. A node that booted
alone anyway is joined with ``rabbitmqctl stop_app; join_cluster; start_app``, the
documented manual procedure (each rabbitmqctl call starts an Erlang VM: seconds apiece).

Used by the tests, ``make stack-ha`` and ``make failover-drill``::

    cluster = RabbitMQCluster(root).start()
    os.environ["CELERY_BROKER_URL"] = cluster.urls()
    cluster.kill_node(cluster.queue_leader("highscale.orders"))
    cluster.stop()
"""

from __future__ import annotations

import contextlib
import os
import secrets
import signal
import subprocess
from dataclasses import dataclass, field
from pathlib import Path
from types import TracebackType

from deploy.local import rabbitmq
from deploy.local.binaries import find_binary
from deploy.local.processes import Process, ServerError, free_port, port_open, wait_until

# A rabbitmqctl call starts an Erlang VM of its own; a loaded machine makes that slow.
CTL_TIMEOUT = 120
# Pause the minority side of a partition rather than let two halves accept writes;
# quorum queues need a majority anyway. Guest may connect from anywhere (loopback only).
NODE_CONFIG = "loopback_users = none\ncluster_partition_handling = pause_minority\n"
# Nodes 2..N: join the seed at first boot, retrying while it is still booting.
PEER_CONFIG = (
    "cluster_formation.peer_discovery_backend = classic_config\n"
    "cluster_formation.classic_config.nodes.1 = {seed}\n"
    "cluster_formation.discovery_retry_limit = 120\n"
    "cluster_formation.discovery_retry_interval = 500\n"
)


@dataclass
class ClusterNode:
    """One node of the cluster: its short name (``hs1``), Erlang name, ports and files."""

    name: str
    erlang_name: str
    port: int
    dist_port: int
    home: Path
    process: Process | None = None

    @property
    def url(self) -> str:
        """Return the node's AMQP URL (the default vhost, user guest)."""
        return f"amqp://guest:guest@127.0.0.1:{self.port}//"

    @property
    def running(self) -> bool:
        """Return whether the node's process is alive (it may still be booting)."""
        return self.process is not None and self.process.popen.poll() is None


@dataclass
class RabbitMQCluster:
    """A RabbitMQ cluster under ``root`` (which the ``rabbitmq`` user must be able to enter)."""

    root: Path
    size: int = 3
    prefix: str = "hs"
    nodes: list[ClusterNode] = field(default_factory=list)
    epmd: Process | None = None
    epmd_port: int = 0

    def __post_init__(self) -> None:
        if self.size < 1:
            raise ServerError("a cluster needs at least one node")
        self.root.mkdir(parents=True, exist_ok=True)

    # --- lifecycle ----------------------------------------------------------------------

    def start(self) -> RabbitMQCluster:
        """Start epmd and every node, join nodes 2..N to node 1; return self.

        On any failure everything started so far is stopped before the error propagates.
        """
        try:
            self._start_epmd()
            cookie = secrets.token_hex(20)
            for index in range(1, self.size + 1):
                name = f"{self.prefix}{index}"
                self.nodes.append(
                    ClusterNode(
                        name=name,
                        erlang_name=f"{name}@localhost",
                        port=free_port(),
                        dist_port=free_port(),
                        home=self.root / name,
                    )
                )
            _, as_user = rabbitmq.server()
            seed = self.nodes[0]
            for node in self.nodes:
                peers = PEER_CONFIG.format(seed=seed.erlang_name) if node is not seed else ""
                files = {
                    "enabled_plugins": "[].\n",
                    "rabbitmq.conf": NODE_CONFIG + peers,
                    ".erlang.cookie": cookie,
                }
                rabbitmq.prepare_home(node.home, files, as_user)
                # Erlang refuses a cookie file that anyone but its owner can read.
                (node.home / ".erlang.cookie").chmod(0o400)
            popens = [self._spawn(node) for node in self.nodes]
            for node, process in zip(self.nodes, popens, strict=True):
                self._await_node(node, process)
            joined = self.running_nodes()
            for node in self.nodes[1:]:
                if node.name not in joined:
                    self.ctl(node.name, "stop_app")
                    self.ctl(node.name, "join_cluster", seed.erlang_name)
                    self.ctl(node.name, "start_app")
            if len(joined) < len(self.nodes):
                self.wait_running(len(self.nodes))
        except BaseException:
            self.stop()
            raise
        return self

    def start_node(self, name: str) -> None:
        """Start node ``name`` again (after ``kill_node``) on its ports and data; it rejoins."""
        node = self.node(name)
        if node.running:
            return
        self._await_node(node, self._spawn(node))

    def kill_node(self, name: str) -> int:
        """SIGKILL node ``name`` (its whole process group, as a crash would); return its pid."""
        node = self.node(name)
        if node.process is None:
            raise ServerError(f"node {name} is not running")
        pid = node.process.popen.pid
        with contextlib.suppress(ProcessLookupError):
            os.killpg(pid, signal.SIGKILL)
        node.process.popen.wait(30)
        node.process = None
        return pid

    def stop(self) -> None:
        """Stop every node, then the private epmd (which outlives them), leaving no process."""
        for node in reversed(self.nodes):
            if node.process is not None:
                node.process.stop(30)
                node.process = None
        if self.epmd is not None:
            self.epmd.stop(10)
            self.epmd = None

    def __enter__(self) -> RabbitMQCluster:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()

    # --- what clients need ----------------------------------------------------------------

    def urls(self) -> str:
        """Return CELERY_BROKER_URL for the cluster: every node's URL, ``;``-separated."""
        return ";".join(node.url for node in self.nodes)

    def node(self, name: str) -> ClusterNode:
        """Return the node called ``name`` (``hs1``…) or with that Erlang name."""
        for node in self.nodes:
            if name in (node.name, node.erlang_name):
                return node
        raise ServerError(f"no node {name!r} in this cluster")

    def queue_leader(self, queue: str, vhost: str = "/") -> str:
        """Return the short name of the node leading quorum queue ``queue``."""
        return self.queue_replicas(queue, vhost)[0]

    def queue_replicas(self, queue: str, vhost: str = "/") -> tuple[str, list[str]]:
        """Return the leader of quorum queue ``queue`` and the nodes holding a replica of
        it (short names, sorted), from one rabbitmqctl call."""
        leader, members = self._queue_info(queue, vhost, "leader", "members")
        names = members.strip("[]").replace("'", "").replace('"', "").split(",")
        replicas = sorted(self.node(member.strip()).name for member in names if member.strip())
        return self.node(leader).name, replicas

    def running_nodes(self) -> list[str]:
        """Return the short names of the nodes the cluster reports as running."""
        output = self.ctl(self._live_node().name, "eval", "rabbit_nodes:all_running().")
        names = output.strip().strip("[]").replace("'", "").split(",")
        return sorted(self.node(name.strip()).name for name in names if name.strip())

    def wait_running(self, count: int, timeout: float = 60) -> None:
        """Wait until ``count`` nodes report themselves running in the cluster."""

        def enough() -> bool:
            try:
                return len(self.running_nodes()) >= count
            except ServerError:
                return False

        wait_until(enough, timeout, f"{count} running RabbitMQ node(s)", interval=0.5)

    def ctl(self, name: str, *args: str) -> str:
        """Run ``rabbitmqctl -n <node> args…`` with the cluster's cookie; return its output."""
        node = self.node(name)
        script, as_user = rabbitmq.ctl()
        env = {
            **os.environ,
            **rabbitmq.environment(
                node.home, node=node.erlang_name, port=node.port, dist_port=node.dist_port
            ),
            "ERL_EPMD_PORT": str(self.epmd_port),
        }
        try:
            done = subprocess.run(  # noqa: S603 -- the ctl script, our arguments
                [script, "-n", node.erlang_name, *args],
                env=env,
                user=as_user,
                cwd=node.home,
                capture_output=True,
                timeout=CTL_TIMEOUT,
                check=False,
            )
        except subprocess.TimeoutExpired as exc:
            raise ServerError(f"rabbitmqctl {' '.join(args)} on {name} hung") from exc
        if done.returncode != 0:
            output = (done.stdout + done.stderr).decode(errors="replace").strip()
            raise ServerError(f"rabbitmqctl {' '.join(args)} on {name} failed: {output}")
        return done.stdout.decode(errors="replace")

    # --- internals ------------------------------------------------------------------------

    def _queue_info(self, queue: str, vhost: str, *columns: str) -> list[str]:
        output = self.ctl(
            self._live_node().name,
            "list_queues", "-p", vhost, "name", *columns,
            "--quiet", "--no-table-headers",
        )  # fmt: skip
        for line in output.splitlines():
            parts = line.split("\t")
            if parts[0] == queue:
                return parts[1:]
        raise ServerError(f"no queue {queue!r} in vhost {vhost!r}")

    def _live_node(self) -> ClusterNode:
        for node in self.nodes:
            if node.running and port_open("127.0.0.1", node.port):
                return node
        raise ServerError("no node of the cluster is running")

    def _start_epmd(self) -> None:
        self.epmd_port = free_port()
        with open(self.root / "epmd.log", "ab") as log:
            popen = subprocess.Popen(  # noqa: S603 -- the epmd program, our arguments
                [find_binary("epmd"), "-port", str(self.epmd_port), "-address", "127.0.0.1"],
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        self.epmd = Process("epmd", popen)
        wait_until(lambda: port_open("127.0.0.1", self.epmd_port), 30, "epmd")

    def _spawn(self, node: ClusterNode) -> Process:
        env = {
            **os.environ,
            **rabbitmq.environment(
                node.home, node=node.erlang_name, port=node.port, dist_port=node.dist_port
            ),
            "ERL_EPMD_PORT": str(self.epmd_port),
        }
        node.process = rabbitmq.spawn(node.name, node.home, env)
        return node.process

    def _await_node(self, node: ClusterNode, process: Process) -> None:
        try:
            rabbitmq.await_port(process, node.home, node.port)
        except BaseException:
            node.process = None
            raise
