"""The local launcher (deploy/local): private servers start, answer, restart and stop,
leaving nothing behind, as on a machine where none runs."""

from __future__ import annotations

import glob
import shutil
import socket
import subprocess
import sys
from pathlib import Path

import psycopg
import pytest
import redis
from kombu import Connection

from deploy.local import binaries, postgres
from deploy.local.processes import (
    ServerError,
    free_port,
    port_open,
    processes_mentioning,
    wait_until,
)
from deploy.local.servers import Servers


def _execute(url: str, sql: str, params: tuple[object, ...] = ()) -> list[tuple[object, ...]]:
    with psycopg.connect(url.replace("/highscale", "/postgres"), autocommit=True) as conn:
        cursor = conn.execute(sql, params)
        return cursor.fetchall() if cursor.description else []


def _scalar(url: str, sql: str, params: tuple[object, ...] = ()) -> object:
    [(value,)] = _execute(url, sql, params)
    return value


def test_private_servers_start_answer_and_leave_nothing_behind():
    servers = Servers()
    try:
        primary = servers.start_postgres()
        replica = servers.start_replica(primary)
        redis_url = servers.start_redis()
        broker = servers.start_rabbitmq()

        _execute(primary, "CREATE TABLE probe (id int)")
        _execute(primary, "INSERT INTO probe VALUES (42)")
        lsn = _scalar(primary, "SELECT pg_current_wal_insert_lsn()")
        assert _scalar(replica, "SELECT pg_is_in_recovery()") is True
        assert _scalar(primary, "SELECT state FROM pg_stat_replication") == "streaming"
        wait_until(
            lambda: (
                _scalar(replica, "SELECT pg_last_wal_replay_lsn() >= %s::pg_lsn", (lsn,)) is True
            ),
            30,
            "the replica replaying the primary's insert",
        )
        assert _scalar(replica, "SELECT array_agg(id) FROM probe") == [42]
        assert redis.Redis.from_url(redis_url).ping() is True
        with Connection(broker, connect_timeout=5) as conn:
            conn.ensure_connection(max_retries=1)
        ports = [int(url.rsplit(":", 1)[1].split("/")[0]) for url in (primary, replica, redis_url)]
        ports.append(int(broker.rsplit(":", 1)[1].split("/")[0]))
    finally:
        servers.stop()

    assert not servers.root.exists()
    assert [port for port in ports if port_open("127.0.0.1", port)] == []
    assert processes_mentioning(servers.root) == []


def test_a_stopped_postgres_restarts_on_its_port_with_its_data(private_servers: Servers) -> None:
    servers = private_servers
    url = servers.start_postgres("restartable")
    _execute(url, "CREATE TABLE kept (id int)")
    _execute(url, "INSERT INTO kept VALUES (7)")

    servers.stop_server("restartable")
    assert not port_open("127.0.0.1", postgres.port_of(url))
    servers.restart_postgres("restartable")

    assert _scalar(url, "SELECT array_agg(id) FROM kept") == [7]
    assert [p.name for p in servers.processes] == ["restartable"]


def test_a_postgres_tool_failure_raises_with_its_output(tmp_path: Path) -> None:
    with pytest.raises(ServerError, match=r"pg_basebackup .* failed:\n.*"):
        postgres.base_backup(1, tmp_path / "copy", standby=True)


def test_a_missing_server_binary_names_the_exact_install_command(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # No program found anywhere, and no apt-get: as on a machine without the packages.
    monkeypatch.setattr(shutil, "which", lambda name, path=None: None)
    monkeypatch.setattr(glob, "glob", lambda pattern: [])

    with pytest.raises(ServerError, match=r"Install it with: sudo apt-get install -y nginx-light$"):
        binaries.find_binary("nginx")
    with pytest.raises(ServerError, match=r"Install it with: sudo apt-get install -y postgresql$"):
        binaries.find_binary("initdb")


def test_picked_ports_avoid_the_ephemeral_range_and_never_repeat() -> None:
    # A port from the range outgoing connections take could be taken by one of them
    # before its server binds it (a Patroni node once exited so in CI).
    low = int(Path("/proc/sys/net/ipv4/ip_local_port_range").read_text().split()[0])
    ports = [free_port() for _ in range(300)]
    assert len(set(ports)) == len(ports)
    assert all(port < low for port in ports), [p for p in ports if p >= low]
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", ports[0]))
        taken.listen()
        assert ports[0] not in [free_port() for _ in range(300)]


def test_a_port_picked_here_is_not_picked_by_another_process() -> None:
    # A test picks the stack's ports, then `make stack-ha` picks its engines' ports in
    # a child process before the stack binds the test's: they must not overlap.
    ours = {free_port() for _ in range(200)}
    child = subprocess.run(
        [
            sys.executable,
            "-c",
            "from deploy.local.processes import free_port\n"
            "print(*(free_port() for _ in range(200)))",
        ],
        cwd=Path(__file__).resolve().parents[2],
        capture_output=True,
        text=True,
        check=True,
    )
    theirs = {int(port) for port in child.stdout.split()}
    assert len(theirs) == 200
    assert not ours & theirs
