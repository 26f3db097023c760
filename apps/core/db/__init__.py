"""Read-replica routing: LSN read-your-writes, the replica topology, lag-aware health.

The modules import Django lazily where settings may not be loaded yet (``settings``
is used by ``config/settings.py`` itself).
"""
