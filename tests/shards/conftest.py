"""A coordinator and two shard servers, migrated once per session by the project's ``migrate``."""

from __future__ import annotations

import json
import subprocess
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import psycopg
import pytest

from deploy.local.servers import Servers
from tests.config.subprocess_env import embedded_environment, manage


@dataclass
class ShardedCluster:
    """The servers, their URLs, and the settings environment of a sharded process."""

    servers: Servers
    coordinator: str
    shards: list[str]
    env: dict[str, str]

    def manage(self, *args: str, timeout: float = 180) -> subprocess.CompletedProcess[str]:
        """Run ``manage.py *args`` with the sharded settings."""
        return manage(self.env, *args, timeout=timeout)

    def manage_ok(self, *args: str, timeout: float = 180) -> str:
        """Run ``manage.py *args``; return its stdout, failing the test on a non-zero exit."""
        result = self.manage(*args, timeout=timeout)
        assert result.returncode == 0, result.stderr[-4000:]
        return result.stdout

    def shell(self, code: str, timeout: float = 180) -> Any:
        """Run ``code`` in ``manage.py shell``; return the JSON it printed last."""
        out = self.manage_ok("shell", "-c", code, timeout=timeout)
        return json.loads(out.strip().splitlines()[-1])

    def on_shard(self, number: int, sql: str, params: Any = None) -> list[tuple[Any, ...]]:
        """Run ``sql`` on shard ``number`` (1-based) directly; return its rows."""
        with psycopg.connect(self.shards[number - 1], autocommit=True) as conn:
            cursor = conn.execute(sql, params)
            return cursor.fetchall() if cursor.description else []

    def on_coordinator(self, sql: str, params: Any = None) -> list[tuple[Any, ...]]:
        """Run ``sql`` on the coordinator; return its rows."""
        with psycopg.connect(self.coordinator, autocommit=True) as conn:
            cursor = conn.execute(sql, params)
            return cursor.fetchall() if cursor.description else []

    def shard_of_owner(self, owner_id: int) -> int:
        """Return the shard number PostgreSQL's hash places ``owner_id`` on."""
        return self.shards_of_owners([owner_id])[owner_id]

    def shards_of_owners(self, owner_ids: list[int]) -> dict[int, int]:
        """Return each owner's shard number, from PostgreSQL's own hash (one query)."""
        partitions = int(self.env["DATABASE_SHARD_PARTITIONS"])
        rows = self.on_coordinator(
            "SELECT o, r FROM unnest(%s::bigint[]) o, generate_series(0, %s - 1) r "
            "WHERE satisfies_hash_partition('orders_order'::regclass, %s, r, o)",
            [owner_ids, partitions, partitions],
        )
        assert len(rows) == len(set(owner_ids))
        return {int(owner): int(r) % len(self.shards) + 1 for owner, r in rows}


@pytest.fixture(scope="session")
def sharded_cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ShardedCluster]:
    """Start a coordinator and 2 shards, and run ``migrate`` against them (sharded settings)."""
    servers = Servers()
    try:
        coordinator, shards = servers.start_sharded_postgres(2)
        sqlite = Path(tmp_path_factory.mktemp("sharded")) / "unused.sqlite3"
        env = embedded_environment(
            sqlite,
            DATABASE_URL=coordinator,
            DATABASE_SHARD_URLS=",".join(shards),
            DATABASE_SHARD_PARTITIONS="16",
            DATABASE_SHARD_CONNECT_TIMEOUT_SECONDS="2",
            DATABASE_SHARD_STATEMENT_TIMEOUT_MS="5000",
            LOG_LEVEL="WARNING",
        )
        cluster = ShardedCluster(servers, coordinator, shards, env)
        cluster.manage_ok("migrate", "--no-input", "-v", "0")
        yield cluster
    finally:
        servers.stop()
