"""The harness can start every server itself, as on a machine where none runs."""

import time

import psycopg
import redis
from kombu import Connection

from tests.servers import Servers, port_open


def _scalar(conn: psycopg.Connection, sql: str, params: tuple[object, ...] = ()) -> object:
    row = conn.execute(sql, params).fetchone()
    assert row is not None
    return row[0]


def test_private_servers_start_answer_and_leave_nothing_behind():
    servers = Servers()
    try:
        primary = servers.start_postgres()
        replica = servers.start_replica(primary)
        redis_url = servers.start_redis()
        broker = servers.start_rabbitmq()

        with psycopg.connect(primary.replace("/highscale", "/postgres"), autocommit=True) as conn:
            conn.execute("CREATE TABLE probe (id int)")
            conn.execute("INSERT INTO probe VALUES (42)")
            lsn = _scalar(conn, "SELECT pg_current_wal_insert_lsn()")
        with psycopg.connect(replica.replace("/highscale", "/postgres"), autocommit=True) as conn:
            assert _scalar(conn, "SELECT pg_is_in_recovery()") is True
            for _ in range(200):
                replayed = _scalar(conn, "SELECT pg_last_wal_replay_lsn() >= %s::pg_lsn", (lsn,))
                if replayed:
                    break
                time.sleep(0.05)
            assert conn.execute("SELECT id FROM probe").fetchall() == [(42,)]
        assert redis.Redis.from_url(redis_url).ping() is True
        with Connection(broker, connect_timeout=5) as conn:
            conn.ensure_connection(max_retries=1)
        ports = [int(url.rsplit(":", 1)[1].split("/")[0]) for url in (primary, replica, redis_url)]
        ports.append(int(broker.rsplit(":", 1)[1].split("/")[0]))
    finally:
        servers.stop()

    assert not servers.root.exists()
    assert [port for port in ports if port_open("127.0.0.1", port)] == []
