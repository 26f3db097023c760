"""gunicorn settings for highscale: ``gunicorn -c deploy/gunicorn.conf.py config.wsgi``.

Every value can be overridden from the environment (names below) or the command line.

Metrics: every worker writes its Prometheus values to files in
``PROMETHEUS_MULTIPROC_DIR`` (default ``var/prometheus-multiproc``), which is emptied
when the server starts. When a worker exits (``--max-requests`` recycling, a timeout, a
crash) its counter and histogram files are folded into one archive file per type and
removed, so ``/metrics`` keeps exact, never-decreasing totals while the directory holds
only the live workers' files plus the archives (see apps/observability/multiproc.py).
One directory belongs to one gunicorn master: two servers must not share it.

Tracing is started in each worker after the fork (``post_fork``): the exporter's
background thread would not survive a fork. The app must not be preloaded, so that
each worker loads Django after tracing is set up.
"""

from __future__ import annotations

import multiprocessing
import os
import signal
import sys
from pathlib import Path
from typing import Any

BASE_DIR = Path(__file__).resolve().parent.parent
if str(BASE_DIR) not in sys.path:
    sys.path.insert(0, str(BASE_DIR))

# Set before any worker imports prometheus_client, which reads it at import time.
os.environ.setdefault("PROMETHEUS_MULTIPROC_DIR", str(BASE_DIR / "var" / "prometheus-multiproc"))

bind = os.environ.get("GUNICORN_BIND", "127.0.0.1:8000")
# Sync workers are CPU-bound Django: about two per core keeps the cores busy while
# some wait on the database.
workers = int(os.environ.get("WEB_CONCURRENCY", multiprocessing.cpu_count() * 2 + 1))
worker_class = "sync"
timeout = int(os.environ.get("GUNICORN_TIMEOUT", "30"))
# Time a worker gets to finish its requests on SIGTERM or recycling.
graceful_timeout = int(os.environ.get("GUNICORN_GRACEFUL_TIMEOUT", "25"))
keepalive = int(os.environ.get("GUNICORN_KEEPALIVE", "5"))
# Recycling caps slow leaks; the jitter keeps workers from restarting all at once.
max_requests = int(os.environ.get("GUNICORN_MAX_REQUESTS", "2000"))
max_requests_jitter = int(os.environ.get("GUNICORN_MAX_REQUESTS_JITTER", "200"))
preload_app = False
accesslog = None  # The app writes its own structured access log.
errorlog = "-"
loglevel = os.environ.get("GUNICORN_LOG_LEVEL", "info")


def on_starting(server: Any) -> None:
    """Empty the metrics directory, so totals start from zero with the server."""
    from apps.observability.multiproc import multiproc_dir, prepare_directory

    directory = multiproc_dir()
    if directory is not None:
        prepare_directory(directory)


def post_fork(server: Any, worker: Any) -> None:
    """Start tracing in the new worker (off unless OTEL_EXPORTER_OTLP_ENDPOINT is set)."""
    # Until the worker installs its own handlers (after this hook and the app's import),
    # a SIGTERM from a master shutting down would hit the master's inherited handler and
    # be lost, and the worker would then serve until killed at graceful_timeout.
    signal.signal(signal.SIGTERM, lambda signum, frame: setattr(worker, "alive", False))
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings")
    from apps.observability.tracing import init_tracing

    init_tracing("highscale-web")


def child_exit(server: Any, worker: Any) -> None:
    """Fold the dead worker's metrics into the archives and drop its files."""
    from apps.observability.multiproc import fold_dead_process

    fold_dead_process(worker.pid)
