"""A Patroni-managed PostgreSQL cluster on loopback: 3 etcd members, N nodes, HAProxy.

No script of ours promotes a replica or picks a leader: Patroni does, through a leader
key in etcd. This module only starts the processes, asks Patroni's REST API who holds
which role, and injects faults (``kill_leader``) or planned changes (``switchover``).

    cluster = start_cluster(root)           # or: with running(root) as cluster:
    cluster.primary_url                     # HAProxy → the leader (read-write)
    cluster.replica_url                     # HAProxy → the running replica(s)
    cluster.multi_host_url                  # libpq picks the writable node itself
    cluster.kill_leader(); cluster.wait_leader(exclude=...)
    cluster.stop()                          # no process left behind

The other launchers of ``deploy.local`` set the shape: free ports, a directory per
server, process groups, ``wait_until`` with deadlines.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import signal
import subprocess
import urllib.request
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import psycopg

from deploy.local import postgres
from deploy.local.binaries import find_binary
from deploy.local.etcd import EtcdCluster, start_etcd
from deploy.local.haproxy import Backend, HAProxy
from deploy.local.processes import Process, ServerError, free_port, stop_group, wait_until

START_TIMEOUT = 120.0
SCOPE = "highscale"
# Loopback trust for the superuser and for replication: throw-away local clusters only.
REPLICATION_USER = "replicator"
# For data that is thrown away (``durable=False``): no fsync. Unlike
# ``postgres.NO_FSYNC`` this keeps ``synchronous_commit`` on (off would stop commits
# waiting for the synchronous standby) and ``full_page_writes`` on (pg_rewind needs it).
FAST_PARAMETERS: Mapping[str, str] = {"fsync": "off"}


@dataclass(frozen=True)
class PatroniSettings:
    """The cluster-wide (DCS) settings Patroni's failover behaviour depends on.

    Each is explained where the YAML is written (``node_config``).
    """

    ttl: int = 20
    loop_wait: int = 2
    retry_timeout: int = 5
    maximum_lag_on_failover: int = 1024 * 1024
    synchronous_mode: bool = False

    def __post_init__(self) -> None:
        # Patroni's own rule: a leader must be able to renew its key (every loop_wait)
        # and ride out retry_timeout twice before the key expires.
        if self.ttl < 20 or self.loop_wait + 2 * self.retry_timeout > self.ttl:
            raise ValueError("Patroni needs ttl >= 20 and loop_wait + 2 * retry_timeout <= ttl")


def node_config(
    node: PatroniNode,
    etcd_hosts: list[str],
    settings: PatroniSettings,
    parameters: Mapping[str, str],
    *,
    durable: bool,
) -> str:
    """Return the Patroni YAML of ``node``, every failover setting explained.

    ``durable=False`` skips the fsync of initdb and pg_basebackup (throw-away data).
    """
    j = json.dumps  # a JSON scalar or list is valid YAML
    home = node.home
    no_sync = "" if durable else "    - no-sync\n"
    return f"""\
scope: {SCOPE}
name: {node.name}
restapi:
  # HAProxy's health checks (GET /primary, GET /replica) and patronictl talk to this.
  listen: 127.0.0.1:{node.rest_port}
  connect_address: 127.0.0.1:{node.rest_port}
etcd3:
  # All three members: Patroni fails over to another one when its member dies.
  hosts: {j(etcd_hosts)}
bootstrap:
  # Written to etcd once, by the node that initialises the cluster; shared by all
  # nodes afterwards and changed at run time through PATCH /config.
  dcs:
    # Seconds the leader key lives in etcd without renewal. A leader that dies
    # (SIGKILL, power loss) is replaced only after its key expires: ttl is the
    # floor of the failover time. 20 is Patroni's minimum.
    ttl: {settings.ttl}
    # Seconds between two runs of each node's HA loop: the leader renews its key,
    # a replica checks whether the key is gone. A failover takes ttl plus up to one
    # loop_wait (the replica notices at its next loop), plus the promotion.
    loop_wait: {settings.loop_wait}
    # Seconds Patroni retries etcd and PostgreSQL operations before giving up. A
    # leader that cannot reach etcd for this long demotes itself (stops accepting
    # writes) rather than risk two leaders: loop_wait + 2 * retry_timeout <= ttl.
    retry_timeout: {settings.retry_timeout}
    # Bytes of WAL a replica may be behind and still be promoted. With asynchronous
    # replication a promoted replica loses whatever it had not received: this caps
    # that loss (1 MiB here); a replica further behind refuses, and the cluster stays
    # without a leader until the old one returns. It does not bound the loss to zero.
    maximum_lag_on_failover: {settings.maximum_lag_on_failover}
    # true: Patroni names one replica in synchronous_standby_names, so a commit
    # returns only once that replica has flushed it, and only that replica may be
    # promoted: an acknowledged commit survives the leader's death (RPO 0). The cost
    # is one replication round trip per commit. If no synchronous replica is left,
    # Patroni drops the requirement and the leader keeps accepting writes (set
    # synchronous_mode_strict to refuse them instead).
    synchronous_mode: {j(settings.synchronous_mode)}
    postgresql:
      # An old leader that comes back is rewound onto the new timeline and rejoins as
      # a replica, instead of needing a full base backup.
      use_pg_rewind: true
      parameters:
        # pg_rewind needs hint bits in the WAL (or data checksums).
        wal_log_hints: "on"
        max_connections: 300
        max_wal_senders: 10
        max_replication_slots: 10
        wal_keep_size: 128MB
  initdb:
    - encoding: UTF8
    - auth: trust
{no_sync}\
postgresql:
  listen: 127.0.0.1:{node.port}
  connect_address: 127.0.0.1:{node.port}
  data_dir: {j(str(node.data))}
  bin_dir: {j(str(Path(postgres.program("postgres")).parent))}
  pgpass: {j(str(home / "pgpass"))}
  # How a new or lost replica is (re)built from the leader.
  basebackup:
    - checkpoint: fast
{no_sync}\
  authentication:
    superuser: {{username: postgres, password: postgres}}
    replication: {{username: {REPLICATION_USER}, password: {REPLICATION_USER}}}
  parameters:
    unix_socket_directories: {j(str(home))}
{"".join(f"    {key}: {j(value)}{chr(10)}" for key, value in parameters.items())}\
  pg_hba:
    - local all all trust
    - host all all 127.0.0.1/32 trust
    - host replication all 127.0.0.1/32 trust
"""


@dataclass
class PatroniNode:
    """One Patroni process and the PostgreSQL it manages (which runs in its own session)."""

    name: str
    home: Path
    port: int = field(default_factory=free_port)
    rest_port: int = field(default_factory=free_port)
    process: Process | None = None

    @property
    def data(self) -> Path:
        return self.home / "data"

    @property
    def config_path(self) -> Path:
        return self.home / "patroni.yml"

    @property
    def log_path(self) -> Path:
        return self.home / "patroni.log"

    def log_tail(self, size: int = 3000) -> str:
        """Return the end of Patroni's log, to say why a node that exited did."""
        try:
            return self.log_path.read_bytes()[-size:].decode(errors="replace")
        except OSError as error:
            return f"(unreadable: {error})"

    @property
    def rest_url(self) -> str:
        return f"http://127.0.0.1:{self.rest_port}"

    @property
    def running(self) -> bool:
        return self.process is not None and self.process.popen.poll() is None

    def start(self) -> None:
        """Start Patroni as the PostgreSQL user; it starts (or bootstraps) PostgreSQL."""
        # Debian's patroni runs on the system Python: none of our interpreter's settings.
        env = {"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "HOME": str(self.home)}
        env["LANG"] = "C.UTF-8"
        with self.log_path.open("ab") as log:
            popen = subprocess.Popen(  # noqa: S603 -- the patroni program, our config
                [find_binary("patroni"), str(self.config_path)],
                stdout=log,
                stderr=subprocess.STDOUT,
                user=postgres.run_as(),
                env=env,
                cwd=self.home,
                start_new_session=True,
            )
        self.process = Process(self.name, popen)

    def postmaster_pid(self) -> int | None:
        """Return the pid of this node's running postmaster, if any.

        ``postmaster.pid`` outlives a killed server and its pid may be reused, and a
        killed postmaster stays a zombie until reaped: only a live process whose command
        line names this node's data directory counts.
        """
        with contextlib.suppress(OSError, ValueError, IndexError):
            pid = int((self.data / "postmaster.pid").read_text().split()[0])
            cmdline = Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")
            if os.fsencode(self.data) in cmdline:
                return pid
        return None

    def kill(self) -> None:
        """SIGKILL the postmaster with its backends, and Patroni: a crash, no shutdown."""
        self._kill_postmaster(signal.SIGKILL)
        if self.process is not None:
            stop_group(self.process.popen, 10, signal.SIGKILL)
            self.process = None

    def request_stop(self) -> None:
        """Ask Patroni to stop (SIGTERM): it shuts PostgreSQL down fast, then exits."""
        if self.process is not None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self.process.popen.pid, signal.SIGTERM)

    def stop(self, timeout: float = 30) -> None:
        """Stop Patroni (which shuts PostgreSQL down fast); kill whatever is left."""
        if self.process is not None:
            self.process.stop(timeout)
            self.process = None
        self._kill_postmaster(signal.SIGQUIT)
        self._kill_postmaster(signal.SIGKILL)

    def _kill_postmaster(self, signum: int) -> None:
        pid = self.postmaster_pid()
        if pid is None:
            return
        # Patroni starts the postmaster from a helper that called setsid(): the
        # postmaster and its backends share that helper's process group.
        with contextlib.suppress(ProcessLookupError):
            os.killpg(os.getpgid(pid), signum)
        with contextlib.suppress(ServerError):
            wait_until(lambda: self.postmaster_pid() is None, 10, f"{self.name} postmaster exit")


@dataclass(frozen=True)
class Member:
    """One node as Patroni's ``GET /cluster`` reports it."""

    name: str
    role: str  # "leader", "replica" or "sync_standby"
    state: str  # "running", "streaming", "starting", "stopped", …
    port: int
    lag: int | None  # bytes behind the leader (replicas only)


def rest(url: str, method: str = "GET", body: Any = None, timeout: float = 3) -> Any:
    """Call Patroni's REST API and return its decoded JSON (None for an empty body)."""
    data = json.dumps(body).encode() if body is not None else None
    request = urllib.request.Request(url, data=data, method=method)  # noqa: S310 -- loopback
    request.add_header("Content-Type", "application/json")
    with urllib.request.urlopen(request, timeout=timeout) as response:  # noqa: S310 -- loopback
        raw = response.read()
    return json.loads(raw) if raw else None


@dataclass
class PatroniCluster:
    """A running Patroni cluster: its etcd, its nodes and the HAProxy in front."""

    root: Path
    etcd: EtcdCluster
    nodes: dict[str, PatroniNode]
    haproxy: HAProxy
    settings: PatroniSettings
    database: str = postgres.DATABASE

    # --- URLs -------------------------------------------------------------------------

    @property
    def primary_url(self) -> str:
        """HAProxy's port that leads to the leader (read-write)."""
        return postgres.url(self.haproxy.primary_port, self.database)

    @property
    def replica_url(self) -> str:
        """HAProxy's port that leads to the running replica(s) (read-only)."""
        return postgres.url(self.haproxy.replica_port, self.database)

    @property
    def multi_host_url(self) -> str:
        """libpq's multi-host URL: it tries each node and keeps the one that is writable."""
        hosts = ",".join("127.0.0.1" for _ in self.nodes)
        ports = ",".join(str(node.port) for node in self.nodes.values())
        query = f"host={hosts}&port={ports}&target_session_attrs=read-write"
        return f"postgres://postgres@/{self.database}?{query}"

    def node_url(self, name: str, database: str | None = None) -> str:
        """Return the direct URL of node ``name``, bypassing HAProxy."""
        return postgres.url(self.nodes[name].port, database or self.database)

    # --- roles ------------------------------------------------------------------------

    def members(self) -> list[Member]:
        """Return the members as Patroni reports them (asking any node that answers)."""
        for node in self.nodes.values():
            if not node.running:
                continue
            try:
                answer = rest(f"{node.rest_url}/cluster")
            except OSError:
                continue
            return [
                Member(m["name"], m["role"], m["state"], int(m["port"]), _lag(m.get("lag")))
                for m in answer.get("members", [])
            ]
        return []

    def leader(self) -> str | None:
        """Return the name of the running leader, or None while there is none."""
        for member in self.members():
            if member.role == "leader" and member.state == "running":
                return member.name
        return None

    def wait_leader(self, *, exclude: str | None = None, timeout: float = START_TIMEOUT) -> str:
        """Wait until a leader other than ``exclude`` runs and HAProxy routes to it only."""
        found: list[str] = []

        def elected() -> bool:
            name = self.leader()
            if name is None or name == exclude or self.haproxy.up("primary") != [name]:
                return False
            found.append(name)
            return True

        wait_until(elected, timeout, "a Patroni leader", interval=0.2)
        return found[-1]

    def wait_healthy(self, timeout: float = START_TIMEOUT) -> str:
        """Wait until every node runs, one leads, the others replicate (synchronously
        when ``synchronous_mode`` is on), and HAProxy agrees; return the leader."""
        want_replica = "sync_standby" if self.settings.synchronous_mode else "replica"

        def healthy() -> bool:
            for node in self.nodes.values():
                if not node.running:
                    raise ServerError(
                        f"{node.name} exited; the end of {node.log_path}:\n{node.log_tail()}"
                    )
            members = self.members()
            leaders = [m for m in members if m.role == "leader" and m.state == "running"]
            replicas = [m for m in members if m.role == want_replica]
            return (
                len(members) == len(self.nodes)
                and len(leaders) == 1
                and all(m.state in ("running", "streaming") for m in replicas)
                and len(replicas) == len(self.nodes) - 1
                and self.haproxy.up("primary") == [leaders[0].name]
                and len(self.haproxy.up("replica")) == len(self.nodes) - 1
            )

        wait_until(healthy, timeout, "the Patroni cluster", interval=0.2)
        return self.wait_leader(timeout=timeout)

    # --- faults and planned changes -----------------------------------------------------

    def kill_leader(self) -> str:
        """SIGKILL the leader's postmaster (and backends) and its Patroni; return its name."""
        name = self.leader()
        if name is None:
            raise ServerError("no leader to kill")
        self.nodes[name].kill()
        return name

    def revive(self, name: str) -> None:
        """Start node ``name``'s Patroni again (after ``kill_leader``): it rejoins as a
        replica, rewound with pg_rewind when its timeline diverged."""
        node = self.nodes[name]
        if not node.running:
            node.kill()  # a postmaster left over from the crash must not hold the port
            node.start()

    def switchover(self, candidate: str | None = None, timeout: float = 60) -> tuple[str, str]:
        """Move the leader role to ``candidate`` (default: any replica) with
        ``patronictl switchover --force``; wait for it; return (old, new) leader."""
        old = self.leader()
        if old is None:
            raise ServerError("no leader to switch over from")
        target = candidate or next(name for name in self.nodes if name != old)
        any_node = next(iter(self.nodes.values()))
        command = [find_binary("patronictl"), "-c", str(any_node.config_path), "switchover"]
        command += ["--leader", old, "--candidate", target, "--force", SCOPE]
        result = subprocess.run(  # noqa: S603 -- patronictl, arguments built here
            command, capture_output=True, text=True, check=False, timeout=timeout
        )
        if result.returncode != 0:
            raise ServerError(f"patronictl switchover failed:\n{result.stdout}{result.stderr}")
        return old, self.wait_leader(exclude=old, timeout=timeout)

    def set_synchronous_mode(self, enabled: bool, timeout: float = 60) -> None:
        """Switch ``synchronous_mode`` at run time (PATCH /config); wait until a replica
        is (or none is) the synchronous standby."""
        leader = self.nodes[self.wait_leader()]
        rest(f"{leader.rest_url}/config", "PATCH", {"synchronous_mode": enabled})
        self.settings = PatroniSettings(
            ttl=self.settings.ttl,
            loop_wait=self.settings.loop_wait,
            retry_timeout=self.settings.retry_timeout,
            maximum_lag_on_failover=self.settings.maximum_lag_on_failover,
            synchronous_mode=enabled,
        )
        self.wait_healthy(timeout)

    # --- teardown -----------------------------------------------------------------------

    def stop(self, *, graceful: bool = True, remove: bool = True) -> None:
        """Stop HAProxy, every node and etcd; remove ``root`` unless told otherwise.

        ``graceful`` lets Patroni shut PostgreSQL down (a few seconds: the synchronous
        standby waits to be released); otherwise every process is killed at once, for
        throw-away data.
        """
        self.haproxy.stop()
        if graceful:
            # All at once: a leader stopping alone would wait for its replicas' WAL.
            for node in self.nodes.values():
                node.request_stop()
            for node in self.nodes.values():
                node.stop()
        else:
            for node in self.nodes.values():
                node.kill()
        self.etcd.stop(graceful=graceful)
        if remove and not os.environ.get("HIGHSCALE_KEEP_SERVER_DIRS"):
            shutil.rmtree(self.root, ignore_errors=True)


def _lag(value: Any) -> int | None:
    return value if isinstance(value, int) else None


def start_cluster(
    root: Path,
    *,
    nodes: int = 2,
    settings: PatroniSettings | None = None,
    parameters: Mapping[str, str] | None = None,
    durable: bool = False,
    database: str = postgres.DATABASE,
    timeout: float = START_TIMEOUT,
) -> PatroniCluster:
    """Start etcd (3 members), ``nodes`` Patroni nodes and HAProxy under ``root``.

    ``root`` must be new or empty. Wait until a leader runs, the replicas stream,
    HAProxy routes to both, and ``database`` exists; on any failure stop what was
    started. ``parameters`` are PostgreSQL settings of every node; unless ``durable``,
    nothing is fsynced (throw-away data for tests).
    """
    parameters = {**({} if durable else FAST_PARAMETERS), **(parameters or {})}
    settings = settings or PatroniSettings()
    # Every run takes new free ports, and etcd keeps its members' peer URLs in its data:
    # a cluster cannot be restarted from an old root.
    if root.exists() and any(root.iterdir()):
        raise ServerError(f"{root} is not empty: a Patroni cluster starts in a new directory")
    root.mkdir(parents=True, exist_ok=True)
    os.chmod(root, 0o755)  # noqa: S103 -- postgres-owned servers must traverse it
    members = {
        f"pg{n}": PatroniNode(f"pg{n}", postgres.owned_dir(root / f"pg{n}", 0o700))
        for n in range(1, nodes + 1)
    }
    etcd = start_etcd(root / "etcd")
    cluster = PatroniCluster(root, etcd, members, HAProxy(root / "haproxy"), settings, database)
    try:
        for node in members.values():
            config = node_config(node, etcd.hosts, settings, parameters, durable=durable)
            node.config_path.write_text(config)
            user = postgres.run_as()
            if user:
                shutil.chown(node.config_path, user=user)
        # Started together, the nodes race for etcd's initialize key: the winner runs
        # initdb, the others wait for it and clone it with pg_basebackup.
        for node in members.values():
            node.start()
        backends = [Backend(n.name, n.port, n.rest_port) for n in members.values()]
        cluster.haproxy.start(backends)
        leader = cluster.wait_healthy(timeout)
        _create_database(cluster.node_url(leader, "postgres"), database)
    except BaseException:
        cluster.stop()
        raise
    return cluster


@contextlib.contextmanager
def running(root: Path, **options: Any) -> Iterator[PatroniCluster]:
    """Run a cluster (``start_cluster(root, **options)``) for the block; always stop it."""
    cluster = start_cluster(root, **options)
    try:
        yield cluster
    finally:
        cluster.stop()


def _create_database(url: str, name: str) -> None:
    with psycopg.connect(url, autocommit=True, connect_timeout=5) as connection:
        exists = connection.execute("SELECT 1 FROM pg_database WHERE datname = %s", [name])
        if exists.fetchone() is None:
            connection.execute(f'CREATE DATABASE "{name}"')
