"""django-valkey's cluster backend, fixed and given every node (``REDIS_CLUSTER_NODES``).

The settings entry, the redis-py clients and the error classes are in
``apps.core.redis_cluster``.
"""

from __future__ import annotations

from typing import Any

from django.core.cache.backends.base import DEFAULT_TIMEOUT
from django_valkey.cluster_cache.client import DefaultClusterClient
from django_valkey.cluster_cache.pool import (
    ClusterConnectionFactory as ValkeyClusterConnectionFactory,
)
from valkey.cluster import ClusterNode as ValkeyNode

from apps.core.redis_cluster import NODES_OPTION, parse_cluster_nodes


class ClusterConnectionFactory(ValkeyClusterConnectionFactory):  # type: ignore[misc]  # untyped
    """django-valkey's cluster connection factory, given every node as a startup node.

    django-valkey starts a cluster client from ``LOCATION`` alone; a client created
    while that one node is down (a worker starting during a failover) would find no
    cluster. This passes every node of ``REDIS_CLUSTER_NODES``.
    """

    def get_connection(self, params: dict[str, Any]) -> Any:
        """Return a ``ValkeyCluster`` that knows every configured node."""
        kwargs = {key: value for key, value in params.items() if key != "url"}
        startup = [
            ValkeyNode(host, port)  # type: ignore[no-untyped-call]  # untyped in valkey-py
            for host, port in parse_cluster_nodes(self.options.get(NODES_OPTION, []))
        ]
        return self.base_client_cls(startup_nodes=startup, **kwargs, **self.base_client_cls_kwargs)


class ClusterCacheClient(DefaultClusterClient):  # type: ignore[misc]  # untyped library
    """django-valkey's cluster client with Django's ``set_many`` signature.

    django-valkey 0.4.1 maps ``set_many`` to ``mset_nonatomic(data, version, client)``:
    Django's positional ``timeout`` lands in ``version``, so the keys are written under
    another version (never found again) and without their timeout. This stores each
    key with its timeout through one cluster pipeline (one request per master).
    """

    def set_many(
        self,
        data: dict[Any, Any],
        timeout: float | None = DEFAULT_TIMEOUT,
        version: int | None = None,
        client: Any = None,
    ) -> list[Any]:
        """Store every item of ``data`` for ``timeout`` seconds; return the keys not stored."""
        if not data:
            return []
        pipe = (client or self.get_client(write=True)).pipeline()
        for key, value in data.items():
            self.set(key, value, timeout=timeout, version=version, client=pipe)
        pipe.execute()
        return []
