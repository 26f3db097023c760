"""One 3 + 3 Redis Cluster for the whole session, and gunicorn serving on it."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
from redis.backoff import NoBackoff
from redis.cluster import RedisCluster
from redis.retry import Retry

from apps.core.redis_topology import ClusterRedis, redis_topology_from_env
from deploy.local.processes import scratch_dir
from deploy.local.redis_cluster import LocalRedisCluster
from tests.gunicorn import Gunicorn, serving


def cluster_topology(redis_cluster: LocalRedisCluster) -> ClusterRedis:
    """Return the topology REDIS_CLUSTER_NODES names for ``redis_cluster``."""
    topology = redis_topology_from_env({"REDIS_CLUSTER_NODES": redis_cluster.nodes})
    assert isinstance(topology, ClusterRedis)
    return topology


def cluster_client(redis_cluster: LocalRedisCluster, *, timeout: float) -> RedisCluster:
    """Return a cluster client as the application makes them: one attempt per call."""
    return cluster_topology(redis_cluster).client(
        socket_timeout=timeout, socket_connect_timeout=timeout, retry=Retry(NoBackoff(), 0)
    )


@pytest.fixture(scope="session")
def redis_cluster() -> Iterator[LocalRedisCluster]:
    """Yield a private cluster of 3 masters and 3 replicas, stopped at the end."""
    cluster = LocalRedisCluster.start(scratch_dir("highscale-cluster-") / "rc")
    try:
        yield cluster
    finally:
        cluster.stop()


@pytest.fixture
def cluster(redis_cluster: LocalRedisCluster):
    """Return a redis-py client of the session's cluster, emptied first."""
    redis_cluster.wait_healthy()
    client = cluster_client(redis_cluster, timeout=2.0)
    client.flushall(target_nodes=client.PRIMARIES)
    yield client
    client.close()


@pytest.fixture(scope="module")
def cluster_server(
    redis_cluster: LocalRedisCluster, django_db_setup, django_db_blocker, tmp_path_factory
) -> Iterator[Gunicorn]:
    """Serve four gunicorn workers on the test database and the cluster (no REDIS_URL)."""
    env = {
        "REDIS_URL": "",
        "REDIS_SENTINELS": "",
        "RATELIMIT_REDIS_URL": "",
        "REDIS_CLUSTER_NODES": redis_cluster.nodes,
        "RATELIMIT_KEY_PREFIX": f"rlc{uuid.uuid4().hex[:6]}",
        "RATELIMIT_OVERRIDES": "api=100/60,login=1000000/60",
    }
    tmp: Path = tmp_path_factory.mktemp("cluster-gunicorn")
    with django_db_blocker.unblock(), serving(tmp, env) as server:
        yield server
