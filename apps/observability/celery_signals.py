"""Celery metrics, logs and tracing, wired through Celery's signals.

Connected from ``ObservabilityConfig.ready`` (``config/celery.py`` stays untouched).

How Prometheus reaches the workers: start each worker with ``PROMETHEUS_MULTIPROC_DIR``
(its own directory, not the web server's) and ``CELERY_METRICS_PORT``. The worker's main
process empties the directory at start and, once the pool is up, serves
``http://<host>:<CELERY_METRICS_PORT>/metrics``: the pool processes' task counters and
runtimes added up exactly as on the web side, plus gauges read at scrape time (queue
depth, and whatever apps register with ``register_scrape_gauge``). A pool process
folds its own files into the archives when it exits, so recycling
(``--max-tasks-per-child``) keeps the directory bounded. "sent" is counted where a task
is published, so it appears on the web's ``/metrics`` too.
"""

from __future__ import annotations

import logging
import os
import threading
import time
from collections.abc import Callable, Iterable, Iterator
from typing import Any

from celery import signals
from django.conf import settings
from prometheus_client import CollectorRegistry, start_http_server
from prometheus_client.core import GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

from apps.observability.metrics import celery_task_runtime_seconds, celery_tasks_total
from apps.observability.multiproc import (
    collect_registry,
    consistent_view,
    fold_dead_process,
    multiproc_dir,
    prepare_directory,
)

logger = logging.getLogger(__name__)

# name → (help, read): ``read`` returns (label values, value) pairs at scrape time.
ScrapeReader = Callable[[], Iterable[tuple[dict[str, str], float]]]
_scrape_gauges: dict[str, tuple[str, ScrapeReader]] = {}
_started: dict[str, float] = {}
_started_lock = threading.Lock()


def register_scrape_gauge(name: str, documentation: str, read: ScrapeReader) -> None:
    """Expose gauge ``name`` on the worker's metrics endpoint, read fresh at each scrape.

    For values that live outside the process (a queue's depth, a table's row count):
    one reading at scrape time is exact where per-process gauges would disagree.
    """
    _scrape_gauges[name] = (documentation, read)


def _task_name(sender: Any) -> str:
    name = sender if isinstance(sender, str) else getattr(sender, "name", None)
    return name or "unknown"


def on_task_sent(sender: Any = None, **kwargs: Any) -> None:
    """Count a task published (``sender`` is the task's name)."""
    celery_tasks_total.labels(_task_name(sender), "sent").inc()


def on_task_prerun(sender: Any = None, task_id: str | None = None, **kwargs: Any) -> None:
    """Count a task started and note when, for its runtime."""
    celery_tasks_total.labels(_task_name(sender), "started").inc()
    if task_id:
        with _started_lock:
            _started[task_id] = time.perf_counter()


def on_task_postrun(sender: Any = None, task_id: str | None = None, **kwargs: Any) -> None:
    """Observe how long the task ran."""
    with _started_lock:
        started = _started.pop(task_id, None) if task_id else None
    if started is not None:
        celery_task_runtime_seconds.labels(_task_name(sender)).observe(
            time.perf_counter() - started
        )


def on_task_success(sender: Any = None, **kwargs: Any) -> None:
    """Count a task that returned."""
    celery_tasks_total.labels(_task_name(sender), "succeeded").inc()


def on_task_failure(sender: Any = None, **kwargs: Any) -> None:
    """Count a task that raised."""
    celery_tasks_total.labels(_task_name(sender), "failed").inc()


def on_task_retry(sender: Any = None, **kwargs: Any) -> None:
    """Count a task that asked to be retried."""
    celery_tasks_total.labels(_task_name(sender), "retried").inc()


def on_worker_init(**kwargs: Any) -> None:
    """Empty the worker's metrics directory (but for its own files) before its pool starts."""
    directory = multiproc_dir()
    if directory is not None:
        # The pid here is prometheus_client's file identity (``*_<pid>.db``), not fork state.
        prepare_directory(directory, keep_pid=os.getpid())


def on_worker_ready(sender: Any = None, **kwargs: Any) -> None:
    """Serve the worker's metrics on ``CELERY_METRICS_PORT`` when it is set."""
    port: int = settings.CELERY_METRICS_PORT
    if not port:
        return
    app = getattr(sender, "app", None)
    registry = CollectorRegistry()
    registry.register(_WorkerCollector(app))
    # Prometheus scrapes workers from other hosts; CELERY_METRICS_ADDR narrows it.
    address = os.environ.get("CELERY_METRICS_ADDR", "0.0.0.0")  # noqa: S104 -- see above
    start_http_server(port, addr=address, registry=registry)
    logger.info("Worker metrics on port %s", port)


def on_worker_process_init(**kwargs: Any) -> None:
    """Start tracing in a new pool process."""
    from apps.observability.tracing import init_tracing

    init_tracing("highscale-worker")


def on_worker_process_shutdown(pid: int | None = None, **kwargs: Any) -> None:
    """Fold the exiting pool process's metrics into the archives."""
    fold_dead_process(pid or os.getpid())


class _WorkerCollector(Collector):
    """Every pool process's metrics, plus gauges read at scrape time."""

    def __init__(self, app: Any) -> None:
        self.app = app

    def collect(self) -> Iterator[Metric]:
        directory = multiproc_dir()
        if directory is not None:
            with consistent_view(directory):
                yield from collect_registry(directory).collect()
        for name, (documentation, read) in _scrape_gauges.items():
            family = GaugeMetricFamily(name, documentation, labels=None)
            try:
                readings = list(read())
            except Exception:  # A broken reading must not take the whole scrape down
                logger.exception("Reading gauge %s failed", name)
                continue
            labelled = GaugeMetricFamily(
                name, documentation, labels=sorted(readings[0][0]) if readings else []
            )
            for labels, value in readings:
                labelled.add_metric([labels[k] for k in sorted(labels)], value)
            yield labelled if readings else family


def connect() -> None:
    """Connect every handler to its Celery signal (idempotent)."""
    pairs: tuple[tuple[Any, Callable[..., None]], ...] = (
        (signals.before_task_publish, on_task_sent),
        (signals.task_prerun, on_task_prerun),
        (signals.task_postrun, on_task_postrun),
        (signals.task_success, on_task_success),
        (signals.task_failure, on_task_failure),
        (signals.task_retry, on_task_retry),
        (signals.worker_init, on_worker_init),
        (signals.worker_ready, on_worker_ready),
        (signals.worker_process_init, on_worker_process_init),
        (signals.worker_process_shutdown, on_worker_process_shutdown),
    )
    for signal, handler in pairs:
        signal.connect(handler, weak=False, dispatch_uid=f"observability.{handler.__name__}")
