"""The Celery application; configured from Django settings prefixed ``CELERY_``.

Queues, retries and acknowledgement settings (each with its reason) are in the
"Events and queues" section of config/settings.py.
"""

import os
import threading
from typing import Any

from celery import Celery
from celery.signals import (
    before_task_publish,
    task_postrun,
    task_prerun,
    worker_process_shutdown,
    worker_ready,
)

from apps.core.events.correlation import (
    add_correlation_header,
    enter_task_context,
    leave_task_context,
)

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings")

app = Celery("highscale")
app.config_from_object("django.conf:settings", namespace="CELERY")
app.autodiscover_tasks()
# The event plumbing's and the cache's periodic tasks live in packages of the core app.
app.autodiscover_tasks(["apps.core.events", "apps.core.cache"])

before_task_publish.connect(add_correlation_header, dispatch_uid="core.correlation.publish")
task_prerun.connect(enter_task_context, dispatch_uid="core.correlation.enter")
task_postrun.connect(leave_task_context, dispatch_uid="core.correlation.leave")


def _release_unusable_db_connections(task: Any = None, **_: Any) -> None:
    """Before a task, close only connections that broke or outlived CONN_MAX_AGE.

    What Django does around each request; it replaces Celery's default of closing every
    connection around every task (a new PostgreSQL backend per task), turned off with
    CELERY_DB_REUSE_MAX. Before the task only: after it, the task's own end (its routing
    scope storing a write position) still queries, and a release there would make that
    query pay a second health check; a connection the task broke is closed before the
    next one runs. Eager tasks run inside their caller's transaction: left alone.
    """
    if task is not None and getattr(task.request, "is_eager", False):
        return
    from django.db import connections

    for conn in connections.all(initialized_only=True):
        conn.close_if_unusable_or_obsolete()


def _close_db_connections_of_passing_threads(task: Any = None, **_: Any) -> None:
    """After a task run outside the main thread (thread pool, in-process worker), close.

    Connections belong to their thread; one left by a thread that ends stays open on
    the server. Prefork and solo pools run tasks on their process's main thread.
    """
    if threading.current_thread() is threading.main_thread():
        return
    if task is not None and getattr(task.request, "is_eager", False):
        return
    from django.db import connections

    for conn in connections.all(initialized_only=True):
        conn.close()


task_prerun.connect(_release_unusable_db_connections, dispatch_uid="core.db.prerun")
task_postrun.connect(_close_db_connections_of_passing_threads, dispatch_uid="core.db.threads")


@worker_ready.connect(dispatch_uid="core.dead_letters.declare")
def _declare_dead_letter_queue(**_: object) -> None:
    # Messages rejected before the first drain would be dropped by a DLX with no queue.
    from apps.core.events.dead_letters import declare_dead_letter_queue

    declare_dead_letter_queue()


@worker_process_shutdown.connect(dispatch_uid="core.outbox.flush")
def _flush_outbox_relay(**_: object) -> None:
    # A pool process ends with os._exit, which skips atexit: publish what its relay holds
    # now rather than leave it to the next sweep.
    from apps.core.events.outbox import outbox_relay_close

    outbox_relay_close(2.0)
