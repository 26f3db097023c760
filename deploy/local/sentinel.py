"""A local Redis Sentinel set: a master, its replica and three sentinels on free ports.

Sentinel, not this module, decides the failover: ``kill_master`` only SIGKILLs the
current master and ``wait_failover`` watches the sentinels until they name (and the
server confirms) a new one. Used by the tests, and by the HA stack and drill.

    sentinels = SentinelSet(root)
    sentinels.start()
    env = sentinels.topology.environment()   # REDIS_SENTINELS, REDIS_SENTINEL_MASTER
    killed_at = sentinels.kill_master()
    seconds = sentinels.wait_failover(killed_at)
    sentinels.revive()                       # the killed server back, as a replica
    sentinels.stop()
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import redis

from apps.core.redis_topology import SentinelRedis
from deploy.local import redis as redis_server
from deploy.local.binaries import find_binary
from deploy.local.processes import Process, ServerError, free_port, port_open, wait_until

MASTER_NAME = "hs"
SENTINELS = 3
# Two of three sentinels must agree that the master is down before one fails it over.
QUORUM = 2


def sentinel_config(*, port: int, home: Path, master_port: int, down_after_ms: int) -> str:
    """Return a sentinel's configuration file (Sentinel rewrites it as it learns)."""
    return "\n".join(
        [
            f"port {port}",
            "bind 127.0.0.1",
            f'dir "{home}"',
            f"sentinel monitor {MASTER_NAME} 127.0.0.1 {master_port} {QUORUM}",
            # How long a master may not answer before a sentinel counts it as down.
            f"sentinel down-after-milliseconds {MASTER_NAME} {down_after_ms}",
            # A failover that has not completed in this time is started again.
            f"sentinel failover-timeout {MASTER_NAME} 10000",
            # The promoted replica's peers resynchronise one at a time.
            f"sentinel parallel-syncs {MASTER_NAME} 1",
            "",
        ]
    )


@dataclass
class SentinelSet:
    """Two Redis servers (one master, one replica) and three sentinels under ``root``."""

    root: Path
    down_after_ms: int = 2000
    servers: dict[str, int] = field(default_factory=dict)  # name -> port
    sentinel_ports: list[int] = field(default_factory=list)
    processes: dict[str, Process] = field(default_factory=dict)
    killed: str | None = None

    @property
    def topology(self) -> SentinelRedis:
        """Return how clients reach this set (``environment()`` gives its variables)."""
        return SentinelRedis(tuple(("127.0.0.1", p) for p in self.sentinel_ports), MASTER_NAME)

    def start(self) -> None:
        """Start the master, its replica and the sentinels; wait until all see each other."""
        try:
            master_port = self._start_server("redis-a", free_port(), replica_of=None)
            self._start_server("redis-b", free_port(), replica_of=master_port)
            for index in range(SENTINELS):
                self._start_sentinel(index, master_port)
            wait_until(self._settled, 60, "the sentinels seeing the replica and each other")
        except BaseException:
            self.stop()
            raise

    def master_address(self, index: int = 0) -> tuple[str, int]:
        """Return the (host, port) that sentinel ``index`` names as the master now."""
        reply: Any = self.sentinel_client(index).sentinel_get_master_addr_by_name(MASTER_NAME)
        host, port = reply
        return (host.decode() if isinstance(host, bytes) else str(host)), int(port)

    def master_name(self) -> str:
        """Return the name of the server the sentinels call master now."""
        port = self.master_address()[1]
        return next(name for name, p in self.servers.items() if p == port)

    def replica_name(self) -> str:
        """Return the name of a running server that is not the master."""
        master = self.master_name()
        return next(name for name in self.servers if name != master and name in self.processes)

    def pause(self, name: str) -> None:
        """SIGSTOP server ``name``: its connections stay open, nothing answers."""
        os.kill(self.processes[name].popen.pid, signal.SIGSTOP)

    def resume(self, name: str) -> None:
        """SIGCONT server ``name`` after ``pause``."""
        os.kill(self.processes[name].popen.pid, signal.SIGCONT)

    def master_client(self) -> redis.Redis:
        """Return a client of the current master (through the sentinels)."""
        return self.topology.client(socket_timeout=2, socket_connect_timeout=2)

    def server_client(self, name: str) -> redis.Redis:
        """Return a client of server ``name`` itself, whatever its role."""
        return redis.Redis(port=self.servers[name], socket_timeout=2, socket_connect_timeout=2)

    def sentinel_client(self, index: int = 0) -> redis.Redis:
        """Return a client of sentinel ``index``."""
        return redis.Redis(port=self.sentinel_ports[index], socket_timeout=2)

    def wait_replicated(self, timeout: float = 30) -> None:
        """Wait until the replica has every write the master acknowledged so far."""
        master = self.server_client(self.master_name())
        offset = master.info("replication")["master_repl_offset"]

        def caught_up() -> bool:
            replicas = master.info("replication")
            return any(
                int(value["offset"]) >= offset
                for key, value in replicas.items()
                if key.startswith("slave") and isinstance(value, dict)
            )

        wait_until(caught_up, timeout, "the replica catching up with the master")

    def kill_master(self) -> float:
        """SIGKILL the current master; return the moment (``time.monotonic()``) of the kill."""
        name = self.master_name()
        process = self.processes.pop(name)
        os.kill(process.popen.pid, signal.SIGKILL)
        killed_at = time.monotonic()
        process.popen.wait(10)
        self.killed = name
        return killed_at

    def wait_failover(self, killed_at: float, timeout: float = 60) -> float:
        """Wait until the sentinels name a new master that says it is one; return the
        seconds from ``killed_at``."""
        if self.killed is None:
            raise ServerError("wait_failover needs kill_master first")
        old_port = self.servers[self.killed]

        def promoted() -> bool:
            with contextlib.suppress(redis.RedisError):
                host, port = self.master_address()
                if port != old_port:
                    role: Any = redis.Redis(host=host, port=port, socket_timeout=1).role()
                    return bool(role[0] in (b"master", "master"))
            return False

        wait_until(promoted, timeout, "Sentinel's failover", interval=0.02)
        return time.monotonic() - killed_at

    def revive(self) -> None:
        """Start the killed server again, as a replica of the new master, and wait for it."""
        if self.killed is None:
            raise ServerError("revive needs a server killed by kill_master")
        name, self.killed = self.killed, None
        master_port = self.servers[self.master_name()]
        self._start_server(name, self.servers[name], replica_of=master_port)
        wait_until(self._settled, 60, f"{name} replicating from the new master")

    def stop(self) -> None:
        """Stop every process of the set (sentinels first, so none fails over meanwhile)."""
        for name in sorted(self.processes, key=lambda n: not n.startswith("sentinel")):
            self.processes[name].stop(10)
        self.processes.clear()

    # --- starting ------------------------------------------------------------------------

    def _start_server(self, name: str, port: int, *, replica_of: int | None) -> int:
        home = self.root / name
        home.mkdir(parents=True, exist_ok=True)
        command = redis_server.command(port, home)
        if replica_of is not None:
            command += ["--replicaof", "127.0.0.1", str(replica_of)]
        self.servers[name] = port
        self._spawn(name, command, home)
        wait_until(lambda: port_open("127.0.0.1", port), 30, name)
        return port

    def _start_sentinel(self, index: int, master_port: int) -> None:
        name = f"sentinel-{index + 1}"
        home = self.root / name
        home.mkdir(parents=True, exist_ok=True)
        port = free_port()
        config = home / "sentinel.conf"
        config.write_text(
            sentinel_config(
                port=port, home=home, master_port=master_port, down_after_ms=self.down_after_ms
            )
        )
        self.sentinel_ports.append(port)
        self._spawn(name, [find_binary("redis-sentinel"), str(config)], home)
        wait_until(lambda: port_open("127.0.0.1", port), 30, name)

    def _spawn(self, name: str, command: list[str], home: Path) -> None:
        log = (home / "server.log").open("ab")
        with log:
            popen = subprocess.Popen(  # noqa: S603 -- the server program, our arguments
                command, stdout=log, stderr=subprocess.STDOUT, start_new_session=True
            )
        self.processes[name] = Process(name, popen)

    def _settled(self) -> bool:
        """Return whether every sentinel knows the master, a live replica and its peers."""
        for name, process in self.processes.items():
            if process.popen.poll() is not None:
                raise ServerError(f"{name} exited; see {self.root / name / 'server.log'}")
        try:
            for index in range(len(self.sentinel_ports)):
                client = self.sentinel_client(index)
                master: Any = client.sentinel_master(MASTER_NAME)
                replicas: Any = client.sentinel_slaves(MASTER_NAME)
                live = [
                    r for r in replicas if not r["is_sdown"] and r["master-link-status"] == "ok"
                ]
                if master["num-other-sentinels"] < SENTINELS - 1 or not live:
                    return False
        except redis.RedisError:
            return False
        return True


def main() -> None:
    """Start a set, fail its master over ``rounds`` times, print each failover's seconds."""
    import argparse
    import shutil

    from deploy.local.processes import scratch_dir

    parser = argparse.ArgumentParser(description=main.__doc__)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--down-after-ms", type=int, default=2000)
    args = parser.parse_args()
    root = scratch_dir("highscale-sentinel-")
    sentinels = SentinelSet(root, down_after_ms=args.down_after_ms)
    try:
        sentinels.start()
        for round_number in range(1, args.rounds + 1):
            old = sentinels.master_name()
            seconds = sentinels.wait_failover(sentinels.kill_master())
            print(  # noqa: T201 -- the command's output
                f"round {round_number}: {old} SIGKILLed, {sentinels.master_name()} "
                f"promoted in {seconds:.2f} s (down-after-milliseconds {args.down_after_ms})",
                flush=True,
            )
            sentinels.revive()
    finally:
        sentinels.stop()
        shutil.rmtree(root, ignore_errors=True)


if __name__ == "__main__":
    main()
