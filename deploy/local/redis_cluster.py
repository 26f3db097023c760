"""A private Redis Cluster: masters with replicas on free ports, formed without redis-cli.

``LocalRedisCluster.start(root)`` starts ``masters × (1 + replicas)`` redis-server
processes, splits the 16384 slots evenly over the masters, joins the nodes
(``CLUSTER MEET``), attaches the replicas (``CLUSTER REPLICATE``) and returns once every
node reports ``cluster_state:ok`` and every replica's link to its master is up.
``kill_master()`` SIGKILLs one master (a crash, not a shutdown) so a test or a drill can
watch its replica take over; ``stop()`` stops every node and leaves nothing running.

``nodes`` is the value of ``REDIS_CLUSTER_NODES`` (``host:port,…``).
"""

from __future__ import annotations

import shutil
import signal
import subprocess
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path
from typing import Any

import redis

from deploy.local.binaries import find_binary
from deploy.local.processes import Process, ServerError, free_port, port_open, wait_until

SLOTS = 16384
HOST = "127.0.0.1"


def command(port: int, bus_port: int, home: Path, *, node_timeout_ms: int) -> list[str]:
    """Return the command that runs one cluster node on 127.0.0.1:``port`` in ``home``.

    ``bus_port`` is the node-to-node port (by default ``port`` + 10000, which a free
    port above 55535 would overflow).
    The cache and the limiter hold nothing that must survive a restart, so nothing is
    saved. ``cluster-require-full-coverage no`` keeps the other masters' slots served
    while one master is down; ``cluster-replica-validity-factor 0`` lets a replica take
    over however long its link was quiet (a loaded box must not block the failover);
    with no diskless-sync delay a replica gets its first copy at once, not 5 s later.
    """
    return [
        find_binary("redis-server"), "--bind", HOST, "--port", str(port),
        "--dir", str(home), "--save", "", "--appendonly", "no",
        "--cluster-enabled", "yes", "--cluster-config-file", "nodes.conf",
        "--cluster-port", str(bus_port),
        "--cluster-node-timeout", str(node_timeout_ms),
        "--cluster-require-full-coverage", "no",
        "--cluster-replica-validity-factor", "0",
        "--repl-diskless-sync-delay", "0",
        "--logfile", str(home / "redis.log"),
    ]  # fmt: skip


@dataclass
class ClusterNodeProcess:
    """One redis-server of the cluster and its process (None once killed or stopped)."""

    port: int
    bus_port: int
    home: Path
    process: Process | None = None

    @property
    def address(self) -> str:
        """Return ``host:port``."""
        return f"{HOST}:{self.port}"

    def client(self, timeout: float = 2.0) -> redis.Redis:
        """Return a plain client of this node alone (cluster commands, INFO)."""
        return redis.Redis(host=HOST, port=self.port, socket_timeout=timeout)


@dataclass
class LocalRedisCluster:
    """A running Redis Cluster on 127.0.0.1 and how to fail and stop its nodes."""

    root: Path
    node_timeout_ms: int = 2000
    members: list[ClusterNodeProcess] = field(default_factory=list)
    # Nodes that another supervisor runs (make stack-sharded): never started or stopped here.
    supervised: bool = False

    @classmethod
    def start(
        cls,
        root: Path,
        *,
        masters: int = 3,
        replicas: int = 1,
        node_timeout_ms: int = 2000,
        timeout: float = 60,
    ) -> LocalRedisCluster:
        """Start and form a cluster under ``root``; stop whatever started if that fails."""
        if masters < 1 or replicas < 0:
            raise ValueError("a cluster needs at least one master and no negative replicas")
        cluster = cls(root, node_timeout_ms)
        try:
            for _ in range(masters * (1 + replicas)):
                cluster._launch(cluster._new_member())
            cluster._form(masters, replicas, timeout)
        except BaseException:
            cluster.stop()
            raise
        return cluster

    @classmethod
    def form_supervised(
        cls, nodes: list[tuple[int, int]], *, masters: int, timeout: float = 60
    ) -> None:
        """Form a cluster of running nodes, given as (port, bus port), masters first.

        Nodes that formed it on an earlier run (their ``nodes.conf``) are only waited for.
        """
        members = [ClusterNodeProcess(port, bus, Path()) for port, bus in nodes]
        cluster = cls(Path(), members=members, supervised=True)
        info = _command(members[0], "CLUSTER", "INFO")
        if _info_value(info, "cluster_slots_assigned") == str(SLOTS):
            cluster.wait_healthy(timeout)
            return
        cluster._form(masters, len(nodes) // masters - 1, timeout)

    # --- what clients need --------------------------------------------------------------

    @property
    def nodes(self) -> str:
        """Return ``REDIS_CLUSTER_NODES``: every node's ``host:port``, comma-separated."""
        return ",".join(m.address for m in self.members)

    def master_ports(self) -> list[int]:
        """Return the ports of the live masters that serve slots, as a live node sees them."""
        return sorted(port for port, _ in self._masters())

    def master_of_slot(self, slot: int) -> int:
        """Return the port of the live master serving ``slot`` now."""
        for port, ranges in self._masters():
            if any(int(low) <= slot <= int(high) for low, high in ranges):
                return port
        raise ServerError(f"no live master serves slot {slot}")

    # --- faults -------------------------------------------------------------------------

    def kill_master(self, port: int | None = None) -> int:
        """SIGKILL master ``port`` (default: the one serving slot 0); return its port."""
        port = self.master_of_slot(0) if port is None else port
        member = self._member(port)
        if member.process is None:
            raise ServerError(f"node {port} is not running")
        member.process.popen.send_signal(signal.SIGKILL)
        member.process.popen.wait(10)
        member.process = None
        return port

    def restart_node(self, port: int) -> None:
        """Start a killed node again; it rejoins the cluster from its nodes.conf."""
        member = self._member(port)
        if member.process is None:
            self._launch(member)

    def wait_healthy(self, timeout: float = 30) -> None:
        """Wait until every running node reports ``cluster_state:ok``, every node sees the
        same masters serving slots, and every replica's link to its master is up.

        After ``restart_node`` of a failed master this is when it has become a replica:
        until then it may still believe it serves its old slots.
        """

        def healthy() -> bool:
            views = set()
            for member in self.members:
                if not self._running(member):
                    continue
                try:
                    info = member.client().cluster("INFO")
                    table = _node_table(member)
                    myself = next(n for n in table.values() if "myself" in n["flags"])
                    if "slave" in myself["flags"] and not _link_up(member):
                        return False
                except (redis.RedisError, StopIteration):
                    return False
                if _info_value(info, "cluster_state") != "ok":
                    return False
                views.add(
                    frozenset(
                        address
                        for address, node in table.items()
                        if "master" in node["flags"]
                        and "fail" not in node["flags"]
                        and node["slots"]
                    )
                )
            return len(views) == 1

        wait_until(healthy, timeout, "the Redis Cluster", interval=0.1)

    def stop(self) -> None:
        """Stop every node (idempotent) and remove the cluster's directories."""
        for member in self.members:
            if member.process is not None:
                member.process.stop(10)
                member.process = None
        shutil.rmtree(self.root, ignore_errors=True)

    # --- forming ------------------------------------------------------------------------

    def _new_member(self) -> ClusterNodeProcess:
        port = free_port()
        home = self.root / f"node-{port}"
        home.mkdir(parents=True)
        member = ClusterNodeProcess(port, free_port(), home)
        self.members.append(member)
        return member

    def _launch(self, member: ClusterNodeProcess) -> None:
        popen = subprocess.Popen(  # noqa: S603 -- the server program, our arguments
            command(
                member.port, member.bus_port, member.home, node_timeout_ms=self.node_timeout_ms
            ),
            stdout=subprocess.DEVNULL,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        member.process = Process(f"redis-cluster-{member.port}", popen)

        def up() -> bool:
            if popen.poll() is not None:
                raise ServerError(f"redis-server exited; see {member.home / 'redis.log'}")
            return port_open(HOST, member.port)

        wait_until(up, 30, f"Redis Cluster node {member.port}")

    def _form(self, masters: int, replicas: int, timeout: float) -> None:
        heads, tails = self.members[:masters], self.members[masters:]
        for index, member in enumerate(heads):
            low, high = index * SLOTS // masters, (index + 1) * SLOTS // masters - 1
            _command(member, "CLUSTER", "ADDSLOTSRANGE", low, high)
            # Distinct epochs up front, so the masters need not settle a collision first.
            _command(member, "CLUSTER", "SET-CONFIG-EPOCH", index + 1)
        first = self.members[0]
        for member in self.members[1:]:
            _command(member, "CLUSTER", "MEET", HOST, first.port, first.bus_port)
        wait_until(lambda: self._all_known(len(self.members)), timeout, "the cluster handshake")
        ids = {m.port: _node_id(m) for m in heads}
        for index, member in enumerate(tails):
            master = heads[index % masters]
            knows = partial(_knows, member, ids[master.port])
            wait_until(knows, timeout, "a replica's view of its master")
            _command(member, "CLUSTER", "REPLICATE", ids[master.port])
        wait_until(lambda: all(_link_up(m) for m in tails), timeout, "the replicas' links")
        self.wait_healthy(timeout)

    def _all_known(self, count: int) -> bool:
        for member in self.members:
            table = _node_table(member)
            if len(table) < count or any("handshake" in n["flags"] for n in table.values()):
                return False
        return True

    def _masters(self) -> list[tuple[int, list[list[str]]]]:
        """Return (port, slot ranges) of each live master with slots."""
        for member in self.members:
            if not self._running(member):
                continue
            try:
                table = _node_table(member)
            except redis.RedisError:
                continue
            return [
                (int(address.rsplit(":", 1)[1]), node["slots"])
                for address, node in table.items()
                if "master" in node["flags"] and "fail" not in node["flags"] and node["slots"]
            ]
        raise ServerError("no node of the Redis Cluster answers")

    def _running(self, member: ClusterNodeProcess) -> bool:
        return self.supervised or member.process is not None

    def _member(self, port: int) -> ClusterNodeProcess:
        for member in self.members:
            if member.port == port:
                return member
        raise ServerError(f"no node of this cluster listens on {port}")


def _command(member: ClusterNodeProcess, *args: str | int) -> Any:
    """Send one command to ``member`` and return redis-py's reply."""
    return member.client().execute_command(*args)  # type: ignore[no-untyped-call]  # untyped


def _node_table(member: ClusterNodeProcess) -> dict[str, dict[str, Any]]:
    """Return CLUSTER NODES as redis-py parses it: ``host:port`` → that node's fields."""
    table: dict[str, dict[str, Any]] = member.client().cluster("NODES")
    return table


def _knows(member: ClusterNodeProcess, node_id: str) -> bool:
    return any(n["node_id"] == node_id for n in _node_table(member).values())


def _node_id(member: ClusterNodeProcess) -> str:
    return str(_command(member, "CLUSTER", "MYID").decode())


def _link_up(member: ClusterNodeProcess) -> bool:
    info = member.client().info("replication")
    return info.get("master_link_status") == "up"


def _info_value(info: object, name: str) -> str:
    if isinstance(info, dict):
        return str(info.get(name, ""))
    text = info.decode() if isinstance(info, bytes) else str(info)
    for line in text.splitlines():
        key, _, value = line.partition(":")
        if key == name:
            return value.strip()
    return ""
