"""Redis Cluster (``REDIS_CLUSTER_NODES``): names shared by the topology, the cache and checks.

django-redis has no cluster client and Django's ``RedisCache`` follows no ``MOVED``
redirect, so on a cluster the Django cache is django-valkey's ``ClusterValkeyCache``
(valkey-py underneath). The tiered cache, the write positions and the rate limiter
speak redis-py: ``ClusterRedis.client`` (``apps.core.redis_topology``) gives them a
``redis.cluster.RedisCluster`` that fails fast (one attempt per call; a failed node
makes it reread the slot map, so the call after a failover reaches the new master).

Every node listed is a startup node: a client started while one of them is down still
finds the cluster through the others. ``config/settings.py`` imports this module, so it
imports nothing of Django's or of the apps; django-valkey's subclasses live in
``apps.core.cache.cluster``.
"""

from __future__ import annotations

from redis import RedisError
from redis.cluster import ClusterNode
from redis.exceptions import RedisClusterException

# What the settings put in OPTIONS for the connection factory below.
NODES_OPTION = "CLUSTER_NODES"
CLUSTER_BACKEND = "django_valkey.cluster_cache.cache.ClusterValkeyCache"
# What a Redis call may raise: redis-py's cluster errors (no slot map, no node reachable
# to learn one) do not derive from RedisError.
REDIS_ERRORS = (RedisError, RedisClusterException)
REDIS_OR_OS_ERRORS = (RedisError, RedisClusterException, OSError)


def parse_cluster_nodes(entries: list[str]) -> list[tuple[str, int]]:
    """Return (host, port) for each ``host:port``; raise ValueError naming a bad entry."""
    nodes = []
    for entry in entries:
        host, _, port = entry.strip().rpartition(":")
        if not host or not port.isdigit() or not 0 < int(port) < 65536:
            raise ValueError(f"REDIS_CLUSTER_NODES entry {entry!r} is not host:port")
        nodes.append((host, int(port)))
    if not nodes:
        raise ValueError("REDIS_CLUSTER_NODES names no node")
    return nodes


def cluster_node(host: str, port: int) -> ClusterNode:
    """Return redis-py's address of one node."""
    return ClusterNode(host, port)  # type: ignore[no-untyped-call]  # untyped in redis-py
