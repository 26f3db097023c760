"""``manage.py scale_advice``: the printed matrix row."""

from __future__ import annotations

from io import StringIO

import pytest
from django.core.management import CommandError, call_command


def run(*args: str) -> str:
    out = StringIO()
    call_command("scale_advice", *args, stdout=out)
    return out.getvalue()


def test_prints_the_row_and_the_parts_to_switch_on() -> None:
    lines = run("--users", "1000").splitlines()

    assert lines[:5] == [
        "Users: 1,000 (1K to 10K users)",
        "Architecture: Modular monolith, 2+ stateless web pods behind a load balancer",
        "Database: PostgreSQL primary with connection pooling",
        "Caching: Redis cache-aside",
        "Notes: Move slow work to background workers; alert on p95 and error rate.",
    ]
    assert lines[5] == "Switch on in highscale:"
    assert "  - REDIS_URL: cache, rate limits, invalidation" in lines
    assert "  - PgBouncer in transaction mode (deploy/pgbouncer)" in lines


def test_points_the_10k_row_at_the_ha_stack_and_the_redis_cluster() -> None:
    lines = run("--users", "10000").splitlines()

    assert lines[0] == "Users: 10,000 (10K to 100K users)"
    assert (
        "  - make stack-ha: Patroni PostgreSQL, Redis Sentinel, a 3-node RabbitMQ cluster" in lines
    )
    assert "  - REDIS_CLUSTER_NODES: Redis Cluster for cache, limits and invalidation" in lines
    assert not [line for line in lines if "DATABASE_SHARD_URLS" in line]


def test_points_the_100k_row_at_the_sharded_stack_and_shard_urls() -> None:
    lines = run("--users", "100000").splitlines()

    assert lines[0] == "Users: 100,000 (100K to 1M users)"
    assert (
        "  - DATABASE_SHARD_URLS: orders partitioned by owner over shard servers (postgres_fdw)"
        in lines
    )
    assert "  - make stack-sharded: that topology locally (2 shards, a 3+3 Redis Cluster)" in lines


@pytest.mark.parametrize(
    ("users", "band"),
    [("999", "under 1K users"), ("1000000", "1M users and more")],
)
def test_names_the_band_on_either_side_of_a_boundary(users: str, band: str) -> None:
    assert f"({band})" in run("--users", users).splitlines()[0]


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--users", "0"], "1 or more"),
        (["--users", "-1"], "1 or more"),
        (["--users", "many"], "invalid int value"),
        ([], "required: --users"),
    ],
)
def test_refuses_bad_or_missing_input(args: list[str], message: str) -> None:
    with pytest.raises(CommandError, match=message):
        run(*args)
