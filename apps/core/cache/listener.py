"""Listen on ``cache:invalidate`` and drop this process's L1 entries as messages arrive.

Redis pub/sub delivers at most once: a message sent while the subscription is down is
lost for good. So every (re)subscription flushes L1 before the listener reports itself
healthy, and L1 is only consulted while it is healthy. A paused or partitioned Redis
does not close the socket, so the listener pings and counts the subscription as dropped
when no pong comes back in time.

The listener is also the first to see Redis answer again: it reports every loss
(``on_lost``) and every answer (``on_answer``), which the tiered cache uses to replay
invalidations Redis missed meanwhile. After ``ping_soon`` it pings at its next turn,
not a full interval later, so a process that just saw Redis fail learns quickly that
it is back.

On a Redis Cluster the invalidation script publishes with plain PUBLISH, which the
cluster forwards to every node, so the listener subscribes on any one node that
answers. A message is lost as well when the key's own master is down, so on a cluster
the listener also pings every master: the subscription counts as live only while all
of them answer, and a master that fails (until its replica has taken over) drops it,
flushing L1 as on one server.
"""

from __future__ import annotations

import json
import logging
import os
import threading
import time
from collections.abc import Callable
from itertools import count
from typing import Any

from redis import Redis, RedisError
from redis.backoff import NoBackoff
from redis.cluster import RedisCluster
from redis.retry import Retry

from apps.core.cache.metrics import count_error
from apps.core.redis_cluster import REDIS_OR_OS_ERRORS, cluster_node
from apps.core.redis_topology import dedicated_client

logger = logging.getLogger(__name__)

_names = count(1)


class InvalidationListener:
    """A daemon thread that keeps one subscription to the invalidation channel."""

    def __init__(
        self,
        *,
        client: Redis | RedisCluster,
        channel: str,
        on_key: Callable[[str], None],
        on_flush: Callable[[], None],
        on_lost: Callable[[], None] = lambda: None,
        on_answer: Callable[[], None] = lambda: None,
        ping_interval: float = 1.0,
        dead_after: float = 3.0,
    ) -> None:
        self.channel = channel
        self.name = f"hs-cache-listener-{os.getpid()}-{next(_names)}"
        self._turn = count()
        # On a cluster: every node's address, and (made in the thread) a client of them.
        self._seeds: list[tuple[str, int]] = []
        self._nodes: RedisCluster | None = None
        self._client: Redis | None = None
        if isinstance(client, RedisCluster):
            nodes = client.get_nodes()  # type: ignore[no-untyped-call]  # untyped in redis-py
            self._seeds = [(node.host, node.port) for node in nodes]
        else:
            self._client = _dedicated_client(client, self.name)
        self._on_key = on_key
        self._on_flush = on_flush
        self._on_lost = on_lost
        self._on_answer = on_answer
        self._ping_soon = threading.Event()
        self._ping_interval = ping_interval
        self._dead_after = dead_after
        self._subscribed = False
        self._live = threading.Event()  # set while subscribed, for ``wait_healthy``
        self._last_pong = 0.0
        self._stopping = threading.Event()
        self._thread = threading.Thread(target=self._run, name=self.name, daemon=True)

    def start(self) -> None:
        """Start listening in the background."""
        self._thread.start()

    def stop(self, timeout: float = 2.0) -> None:
        """Stop listening and wait for the thread to end."""
        self._stopping.set()
        if self._thread.is_alive():
            self._thread.join(timeout)
        if self._client is not None:
            self._client.close()
        if self._nodes is not None:
            self._nodes.close()

    def ping_soon(self) -> None:
        """Ping at the next turn of the loop (a fraction of a second), not the next interval."""
        self._ping_soon.set()

    @property
    def healthy(self) -> bool:
        """Return whether every invalidation sent now will reach this process."""
        return self._subscribed and time.monotonic() - self._last_pong < self._dead_after

    def wait_healthy(self, timeout: float) -> bool:
        """Wait up to ``timeout`` seconds for a live subscription; return whether there is one."""
        self._live.wait(timeout)
        return self.healthy

    def _run(self) -> None:
        backoff = 0.05
        while not self._stopping.is_set():
            try:
                self._listen()
                backoff = 0.05
            except REDIS_OR_OS_ERRORS as exc:
                count_error("subscribe")
                # Once per outage, not once per reconnection attempt.
                log = logger.warning if self._subscribed else logger.debug
                log("Cache invalidation subscription lost: %s", exc)
            finally:
                self._drop()
            self._stopping.wait(backoff)
            backoff = min(backoff * 2, 1.0)

    def _listen(self) -> None:
        if self._seeds:
            # Another node each attempt: the last one may be the master that failed.
            if self._nodes is None:
                self._nodes = _cluster_client(self._seeds, self.name)
            if self._client is not None:
                self._client.close()
            self._client = self._subscriber(self._nodes)
            self._check_masters()
        if self._client is None:
            raise RedisError("no Redis client to subscribe with")
        pubsub = self._client.pubsub()  # type: ignore[no-untyped-call]  # untyped in redis-py
        try:
            pubsub.subscribe(self.channel)
            next_ping = time.monotonic() + self._ping_interval
            while not self._stopping.is_set():
                message = pubsub.get_message(timeout=0.2)
                now = time.monotonic()
                if message is not None:
                    self._handle(message, now)
                if self._subscribed and now - self._last_pong >= self._dead_after:
                    raise RedisError("no pong from Redis; counting the subscription as dropped")
                if now >= next_ping or self._ping_soon.is_set():
                    self._ping_soon.clear()
                    pubsub.ping()
                    self._check_masters()
                    next_ping = now + self._ping_interval
        finally:
            pubsub.close()

    def _check_masters(self) -> None:
        """On a cluster, raise RedisError unless every master answers a ping."""
        if self._nodes is not None:
            self._nodes.ping(target_nodes=RedisCluster.PRIMARIES)

    def _subscriber(self, cluster: RedisCluster) -> Redis:
        """Return a client of one cluster node, the next in turn, for the subscription."""
        nodes = cluster.get_nodes()  # type: ignore[no-untyped-call]  # untyped in redis-py
        node = nodes[next(self._turn) % len(nodes)]
        return Redis(
            host=node.host,
            port=node.port,
            client_name=self.name,
            socket_timeout=_CLUSTER_TIMEOUT,
            socket_connect_timeout=_CLUSTER_TIMEOUT,
            retry=Retry(NoBackoff(), 0),
        )

    def _handle(self, message: dict[str, Any], now: float) -> None:
        kind = message["type"]
        if kind == "subscribe":
            # A (re)subscription: whatever was sent while unsubscribed is lost.
            self._on_flush()
            self._last_pong = now
            self._subscribed = True
            self._live.set()
            self._on_answer()
        elif kind == "pong":
            self._last_pong = now
            self._on_answer()
        elif kind == "message":
            self._last_pong = now
            self._apply(message["data"])

    def _apply(self, data: bytes | str) -> None:
        try:
            payload = json.loads(data)
            kind, ident = payload["type"], payload.get("id")
        except (ValueError, TypeError, KeyError):
            logger.warning("Undecodable cache invalidation %r; flushing L1", data)
            self._on_flush()
            return
        if kind == "all" or ident is None:
            self._on_flush()
        else:
            self._on_key(f"{kind}:{ident}")

    def _drop(self) -> None:
        was_subscribed = self._subscribed
        self._subscribed = False
        self._live.clear()
        # Redis may be away for the writers too: what it holds may be stale once it is back.
        self._on_lost()
        # Flush after marking unhealthy, so no reader trusts an entry the flush removes.
        self._on_flush()
        if was_subscribed and not self._stopping.is_set():
            logger.info("Cache invalidation subscription dropped; L1 flushed")


# Socket timeout of the listener's cluster connections: the pings' deadline.
_CLUSTER_TIMEOUT = 0.5


def _cluster_client(seeds: list[tuple[str, int]], name: str) -> RedisCluster:
    """Return a cluster client of the listener's own (its pings never queue behind reads)."""
    return RedisCluster(
        startup_nodes=[cluster_node(host, port) for host, port in seeds],
        client_name=name,
        socket_timeout=_CLUSTER_TIMEOUT,
        socket_connect_timeout=_CLUSTER_TIMEOUT,
        retry=Retry(NoBackoff(), 0),
    )


def _dedicated_client(client: Redis, name: str) -> Redis:
    """Return a client of its own for the subscription, named, and never retrying silently.

    A transparent reconnect would hide the gap in which messages were lost; failing
    loudly lets the listener flush L1 and subscribe again (behind Sentinel, to whichever
    master the sentinels name by then).
    """
    return dedicated_client(
        client, client_name=name, retry=Retry(NoBackoff(), 0), retry_on_error=[]
    )
