"""The replica topology: which database aliases are replicas to route to, and their weights."""

from __future__ import annotations

from django.conf import settings
from django.db import connections


def live_replicas() -> list[tuple[str, int]]:
    """Return the replica aliases (with weights) that point at a server of their own.

    An alias that is a test mirror shares the primary's settings dict; reads for it
    are the primary's reads, so it is not a replica to route to or to probe.
    """
    weights: dict[str, int] = settings.DATABASE_REPLICA_WEIGHTS
    if not weights:
        return []
    databases = connections.settings
    primary = databases["default"]
    return [(alias, w) for alias, w in weights.items() if databases[alias] is not primary]
