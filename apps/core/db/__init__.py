"""Read-replica routing: LSN read-your-writes, lag-aware health, per-alias counters.

The modules import Django lazily where settings may not be loaded yet (``settings``
is used by ``config/settings.py`` itself).
"""
