"""A private etcd cluster on loopback: the consensus store Patroni keeps its leader key in.

Three members tolerate the loss of one: a majority (2 of 3) still elects etcd's own
leader and accepts writes, so Patroni keeps working when any single member dies.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path

from deploy.local.binaries import find_binary
from deploy.local.processes import Process, ServerError, free_port, stop_group, wait_until

START_TIMEOUT = 60.0


@dataclass
class EtcdMember:
    """One etcd member: its name, directory and the two ports it listens on."""

    name: str
    home: Path
    client_port: int = field(default_factory=free_port)
    peer_port: int = field(default_factory=free_port)
    process: Process | None = None

    @property
    def client_url(self) -> str:
        return f"http://127.0.0.1:{self.client_port}"

    @property
    def peer_url(self) -> str:
        return f"http://127.0.0.1:{self.peer_port}"

    def command(self, initial_cluster: str, cluster_name: str) -> list[str]:
        """Return the command line that runs this member in the foreground."""
        return [
            find_binary("etcd"), "--name", self.name, "--data-dir", str(self.home / "data"),
            "--listen-client-urls", self.client_url, "--advertise-client-urls", self.client_url,
            "--listen-peer-urls", self.peer_url, "--initial-advertise-peer-urls", self.peer_url,
            "--initial-cluster", initial_cluster, "--initial-cluster-state", "new",
            "--initial-cluster-token", cluster_name,
            # Loopback round trips are sub-millisecond: a short heartbeat and election
            # timeout let etcd replace a dead leader member in about a second.
            "--heartbeat-interval", "100", "--election-timeout", "1000",
            "--log-level", "warn",
        ]  # fmt: skip

    def healthy(self) -> bool:
        """Return whether the member answers ``/health`` with ``"health": "true"``."""
        try:
            with urllib.request.urlopen(f"{self.client_url}/health", timeout=2) as response:  # noqa: S310 -- our loopback URL
                return bool(json.load(response).get("health") == "true")
        except (OSError, ValueError):
            return False


@dataclass
class EtcdCluster:
    """A running etcd cluster of ``members``; ``hosts`` is what Patroni's ``etcd3`` needs."""

    members: list[EtcdMember]

    @property
    def hosts(self) -> list[str]:
        """Return the members' client addresses as ``host:port``."""
        return [f"127.0.0.1:{member.client_port}" for member in self.members]

    def stop(self, *, graceful: bool = True) -> None:
        """Stop every member: SIGTERM (SIGKILL after a grace period), or SIGKILL at once.

        All are signalled first: a member stopping while the others still run hands
        over leadership and waits for it; one after the other, that adds up.
        """
        signum = signal.SIGTERM if graceful else signal.SIGKILL
        running = [m.process for m in self.members if m.process is not None]
        for process in running:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(process.popen.pid, signum)
        for member in self.members:
            if member.process is not None:
                stop_group(member.process.popen, 10, signum)
                member.process = None


def start_etcd(root: Path, size: int = 3, name: str = "highscale") -> EtcdCluster:
    """Start a new ``size``-member etcd cluster ``name`` under ``root``; wait until all
    members are healthy."""
    members = [EtcdMember(f"etcd{n}", root / f"etcd{n}") for n in range(1, size + 1)]
    initial = ",".join(f"{m.name}={m.peer_url}" for m in members)
    cluster = EtcdCluster(members)
    try:
        for member in members:
            member.home.mkdir(parents=True, exist_ok=True)
            with (member.home / "etcd.log").open("ab") as log:
                popen = subprocess.Popen(  # noqa: S603 -- the etcd program, our arguments
                    member.command(initial, name),
                    stdout=log,
                    stderr=subprocess.STDOUT,
                    start_new_session=True,
                )
            member.process = Process(member.name, popen)

        def ready() -> bool:
            for member in members:
                if member.process is None or member.process.popen.poll() is not None:
                    raise ServerError(f"{member.name} exited; see {member.home / 'etcd.log'}")
            return all(member.healthy() for member in members)

        wait_until(ready, START_TIMEOUT, "etcd cluster", interval=0.1)
    except BaseException:
        cluster.stop()
        raise
    return cluster
