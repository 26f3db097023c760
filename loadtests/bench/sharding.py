"""The price of the coordinator hop: orders placed and read on shards vs on one PostgreSQL.

Both setups run on this machine in the same run: one PostgreSQL, and a coordinator
with two shard servers (postgres_fdw). On one box sharding cannot add capacity; what
is measured is the extra round trip every sharded statement makes.
"""

from __future__ import annotations

import json

from deploy.local.servers import Servers
from loadtests.bench.options import BenchOptions
from loadtests.bench.site import base_environment, manage, production_settings

ROUNDS = 300


def section(options: BenchOptions) -> int:
    """Print per-operation times, sharded and not, and their ratio; return 0."""
    servers = Servers()
    try:
        single = servers.start_postgres_database("single")
        coordinator, shards = servers.start_sharded_postgres(2)
        figures = {}
        for name, env in (
            ("one PostgreSQL", {"DATABASE_URL": single}),
            (
                "coordinator + 2 shards",
                {"DATABASE_URL": coordinator, "DATABASE_SHARD_URLS": ",".join(shards)},
            ),
        ):
            full = base_environment() | production_settings() | env
            manage(full, "migrate", "--no-input", "-v", "0")
            out = manage(
                full,
                "shell",
                "-c",
                f"from loadtests.bench.sharding_probe import main; main({ROUNDS})",
            )
            figures[name] = json.loads(out.strip().splitlines()[-1])
    finally:
        servers.stop()
    one, sharded = figures["one PostgreSQL"], figures["coordinator + 2 shards"]
    for op, label in (("place", "place an order"), ("read", "own-orders page")):
        print(
            f"sharding: {label:<16} {sharded[op] * 1000:7.2f} ms sharded vs "
            f"{one[op] * 1000:7.2f} ms on one PostgreSQL: {sharded[op] / one[op]:.2f}x "
            f"({ROUNDS} each, one client)"
        )
    return 0
