"""Which Redis this deployment runs on, and the clients every Redis user builds from it.

The environment names one topology (see docs/environment.md):

- ``REDIS_URL``: one server (``SingleRedis``);
- ``REDIS_SENTINELS`` + ``REDIS_SENTINEL_MASTER``: a master and its replicas watched by
  Redis Sentinel (``SentinelRedis``), which replaces ``REDIS_URL``;
- ``REDIS_CLUSTER_NODES``: a Redis Cluster (``ClusterRedis``), which replaces
  ``REDIS_URL``; the Django cache runs on django-valkey there (django-redis has no
  cluster client), everything else on redis-py's ``RedisCluster``;
- nothing: no Redis; every user falls back to its in-process form.

``config/settings.py`` reads it once (``redis_topology_from_env``) into ``settings.REDIS``
and builds the Django cache from it (``cache_entry``). Code that talks to Redis itself
gets its client from the topology (``RedisTopology.client``, the rate limiter) or from
the cache's pool (``apps.core.cache.redis_client``: the tiered cache, the sticking
positions, the pending invalidations), and a connection of its own next to a pooled
client with ``dedicated_client`` (the invalidation listener). Each of these follows a
Sentinel failover: a new connection asks the sentinels where the master is.

Extension point: a new topology is one more frozen dataclass with ``client``,
``cache_entry`` and ``environment``, a member of the ``RedisTopology`` union, a branch
in ``redis_topology_from_env``, and, if its pooled clients are not plain pools, a branch
in ``dedicated_client`` (the cluster's listener makes its own clients instead: see
``apps.core.cache.listener``).
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, cast

from django.core.exceptions import ImproperlyConfigured
from redis import ConnectionPool, Redis
from redis.cluster import RedisCluster
from redis.sentinel import Sentinel, SentinelConnectionPool

from apps.core.redis_cluster import CLUSTER_BACKEND, NODES_OPTION, cluster_node

# django-redis's cache backend, whatever the topology.
CACHE_BACKEND = "django_redis.cache.RedisCache"


@dataclass(frozen=True)
class SingleRedis:
    """One Redis server at ``url``."""

    url: str

    def client(self, **options: Any) -> Redis:
        """Return a new client with a pool of its own; ``options`` go to redis-py."""
        return Redis.from_url(self.url, **options)

    def cache_entry(self, options: dict[str, Any]) -> dict[str, Any]:
        """Return the django-redis ``CACHES`` entry, ``options`` as its OPTIONS."""
        return {"BACKEND": CACHE_BACKEND, "LOCATION": self.url, "OPTIONS": options}

    def environment(self) -> dict[str, str]:
        """Return the variables that name this topology (for a child process)."""
        return {"REDIS_URL": self.url}


@dataclass(frozen=True)
class SentinelRedis:
    """The master called ``master``, found through the ``sentinels`` (host, port)."""

    sentinels: tuple[tuple[str, int], ...]
    master: str
    db: int = 0

    def client(self, **options: Any) -> Redis:
        """Return a new client of the current master; ``options`` go to redis-py.

        Every new connection asks the sentinels for the master first, so after a
        failover the next connection reaches the promoted replica; a connection to a
        demoted master is dropped on its first READONLY answer (redis-py's
        ``SentinelManagedConnection``). The sentinels are asked with the same timeouts.
        """
        sentinel = Sentinel(  # type: ignore[no-untyped-call]  # untyped in redis-py
            list(self.sentinels), sentinel_kwargs=_sentinel_kwargs(options)
        )
        return _master_client(sentinel, self.master, db=self.db, **options)

    def cache_entry(self, options: dict[str, Any]) -> dict[str, Any]:
        """Return the ``CACHES`` entry on django-redis's own Sentinel support."""
        socket_options = {
            k: v for k, v in options.items() if k in ("SOCKET_TIMEOUT", "SOCKET_CONNECT_TIMEOUT")
        }
        return {
            "BACKEND": CACHE_BACKEND,
            # django-redis reads the master's name from the URL's host.
            "LOCATION": f"redis://{self.master}/{self.db}",
            "OPTIONS": {
                **options,
                "CONNECTION_FACTORY": "django_redis.pool.SentinelConnectionFactory",
                "CONNECTION_POOL_CLASS": "redis.sentinel.SentinelConnectionPool",
                "SENTINELS": [list(address) for address in self.sentinels],
                "SENTINEL_KWARGS": _sentinel_kwargs(
                    {k.lower(): v for k, v in socket_options.items()}
                ),
            },
        }

    def environment(self) -> dict[str, str]:
        """Return the variables that name this topology (for a child process)."""
        return {
            "REDIS_SENTINELS": ",".join(f"{host}:{port}" for host, port in self.sentinels),
            "REDIS_SENTINEL_MASTER": self.master,
        }


@dataclass(frozen=True)
class ClusterRedis:
    """A Redis Cluster reached through any of ``nodes`` (host, port)."""

    nodes: tuple[tuple[str, int], ...]

    def client(self, **options: Any) -> RedisCluster:
        """Return a new cluster client; ``options`` go to redis-py (its connections).

        ``retry`` also bounds the cluster-level attempts: with none, a call that meets a
        failed node fails at once, and the client rereads the slot map for the next.
        """
        return RedisCluster(
            startup_nodes=[cluster_node(host, port) for host, port in self.nodes], **options
        )

    def cache_entry(self, options: dict[str, Any]) -> dict[str, Any]:
        """Return the ``CACHES`` entry on django-valkey's cluster backend.

        The socket and pool options carry over; the client class becomes its cluster
        counterpart, and every node is a startup node (``apps.core.cache.cluster``).
        """
        host, port = self.nodes[0]
        return {
            "BACKEND": CLUSTER_BACKEND,
            # Cluster mode has database 0 only; django-valkey refuses any other.
            "LOCATION": f"redis://{host}:{port}/0",
            "OPTIONS": {
                **options,
                "CLIENT_CLASS": "apps.observability.cache_metrics.ClusterClient",
                "CONNECTION_FACTORY": "apps.core.cache.cluster.ClusterConnectionFactory",
                NODES_OPTION: [f"{h}:{p}" for h, p in self.nodes],
            },
        }

    def environment(self) -> dict[str, str]:
        """Return the variables that name this topology (for a child process)."""
        return {"REDIS_CLUSTER_NODES": ",".join(f"{h}:{p}" for h, p in self.nodes)}


RedisTopology = SingleRedis | SentinelRedis | ClusterRedis


def redis_topology_from_env(environ: Mapping[str, str] = os.environ) -> RedisTopology | None:
    """Return the topology the environment names, or None when it names no Redis.

    Raise ImproperlyConfigured on a half-given or malformed Sentinel setting, a malformed
    cluster node list, or both a cluster and Sentinel named.
    """
    cluster = environ.get("REDIS_CLUSTER_NODES", "").strip()
    if cluster:
        if environ.get("REDIS_SENTINELS", "").strip():
            raise ImproperlyConfigured(
                "REDIS_CLUSTER_NODES and REDIS_SENTINELS name two Redis topologies: set one."
            )
        return ClusterRedis(parse_addresses("REDIS_CLUSTER_NODES", cluster))
    sentinels = environ.get("REDIS_SENTINELS", "").strip()
    master = environ.get("REDIS_SENTINEL_MASTER", "").strip()
    if sentinels or master:
        if not (sentinels and master):
            raise ImproperlyConfigured(
                "REDIS_SENTINELS and REDIS_SENTINEL_MASTER go together: set both "
                "(e.g. REDIS_SENTINELS=10.0.0.1:26379,10.0.0.2:26379 REDIS_SENTINEL_MASTER=hs)."
            )
        return SentinelRedis(parse_addresses("REDIS_SENTINELS", sentinels), master)
    url = environ.get("REDIS_URL", "").strip()
    return SingleRedis(url) if url else None


def parse_addresses(name: str, raw: str) -> tuple[tuple[str, int], ...]:
    """Parse ``host:port,host:port`` from variable ``name``; refuse anything else."""
    addresses = []
    for item in (part.strip() for part in raw.split(",")):
        host, _, port = item.rpartition(":")
        if not item or not host or not port.isdigit() or not 0 < int(port) < 65536:
            raise ImproperlyConfigured(
                f"{name}={raw!r}: {item!r} is not host:port (e.g. 127.0.0.1:26379)."
            )
        addresses.append((host.strip("[]"), int(port)))
    return tuple(addresses)


def cache_entry(topology: RedisTopology | None, options: dict[str, Any]) -> dict[str, Any]:
    """Return the ``CACHES["default"]`` entry: django-redis on ``topology``, or in-process."""
    if topology is None:
        return {"BACKEND": "apps.observability.cache_metrics.LocMemCache", "LOCATION": "highscale"}
    return {"KEY_PREFIX": "hs", **topology.cache_entry(options)}


def dedicated_client(client: Redis, **options: Any) -> Redis:
    """Return a client with a small pool of its own, reaching what ``client`` reaches.

    ``options`` replace the connection settings of ``client``'s pool (a client name,
    no retries). Behind Sentinel the new client asks the same sentinels for the master.
    """
    base = client.connection_pool
    kwargs = dict(base.connection_kwargs)
    kwargs.update(options)
    kwargs.pop("retry_on_timeout", None)
    if isinstance(base, SentinelConnectionPool):
        # The pool's own link back to itself; the new pool makes its own.
        kwargs.pop("connection_pool", None)
        return _master_client(base.sentinel_manager, base.service_name, max_connections=2, **kwargs)
    pool = ConnectionPool(connection_class=base.connection_class, max_connections=2, **kwargs)
    return Redis(connection_pool=pool)


def _sentinel_kwargs(options: Mapping[str, Any]) -> dict[str, Any]:
    """Return the connection settings for the sentinels: the same timeouts as the data."""
    return {k: options[k] for k in ("socket_timeout", "socket_connect_timeout") if k in options}


def _master_client(sentinel: Sentinel, master: str, **options: Any) -> Redis:
    client = sentinel.master_for(master, **options)  # type: ignore[no-untyped-call]  # untyped
    return cast(Redis, client)
