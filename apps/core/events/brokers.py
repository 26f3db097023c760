"""The broker URL list: CELERY_BROKER_URL may name several nodes, ``;``-separated.

kombu tries them in order (failover); a connection made with one attempt per URL reaches
the first node that answers, since a dead node refuses at once.
"""

from __future__ import annotations


def broker_urls(broker_url: str | None) -> list[str]:
    """Return the URLs a (``;``-separated) broker URL names, in order."""
    return [url.strip() for url in (broker_url or "").split(";") if url.strip()]


def failover_retries(broker_url: str | None) -> int:
    """Return the ``max_retries`` that gives kombu one attempt at each URL."""
    return max(len(broker_urls(broker_url)) - 1, 0)
