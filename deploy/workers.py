"""The Celery worker pools every deployment runs: which queues, prefetch and concurrency.

Two pools, so that a slow warehouse webhook never holds back an inventory reservation:

- ``worker``: the fast queues (``orders``, ``default``): short database tasks, four
  messages prefetched per process so the pool never waits on the broker between them;
- ``webhook-worker``: the ``webhooks`` queue, slow HTTP calls with prefetch 1, so no
  message waits in a busy process's buffer behind a call that hangs.

Queue names are the suffixes of apps/orders/events.py (``Consumer(queue=...)``) and
config/settings.py (``CELERY_TASK_QUEUES``) after ``EVENTS_QUEUE_PREFIX``. ``make stack``
builds its commands from this table; docker-compose.yml and deploy/k8s write them out,
and tests/deploy/test_workers.py holds all three to it.
"""

from __future__ import annotations

from dataclasses import dataclass

DEFAULT_QUEUE_PREFIX = "highscale"


@dataclass(frozen=True)
class WorkerPool:
    """One kind of Celery worker: its name, queues (suffixes) and prefetch multiplier."""

    name: str
    queues: tuple[str, ...]
    prefetch_multiplier: int
    concurrency: int = 2

    def queue_names(self, prefix: str = DEFAULT_QUEUE_PREFIX) -> list[str]:
        """Return the full names of this pool's queues under ``prefix``."""
        return [f"{prefix}.{queue}" for queue in self.queues]

    def arguments(self, prefix: str = DEFAULT_QUEUE_PREFIX) -> list[str]:
        """Return the ``celery worker`` options that give the pool its queues and prefetch."""
        return [
            "-Q", ",".join(self.queue_names(prefix)),
            "--prefetch-multiplier", str(self.prefetch_multiplier),
        ]  # fmt: skip


FAST = WorkerPool("worker", ("orders", "default"), prefetch_multiplier=4)
WEBHOOKS = WorkerPool("webhook-worker", ("webhooks",), prefetch_multiplier=1)
POOLS = (FAST, WEBHOOKS)
