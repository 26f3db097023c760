"""The Celery application; configured from Django settings prefixed ``CELERY_``.

Queues, retries and acknowledgement settings (each with its reason) are in the
"Events and queues" section of config/settings.py.
"""

import os

from celery import Celery
from celery.signals import before_task_publish, task_postrun, task_prerun, worker_ready

from apps.core.correlation import add_correlation_header, enter_task_context, leave_task_context

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings")

app = Celery("highscale")
app.config_from_object("django.conf:settings", namespace="CELERY")
app.autodiscover_tasks()

before_task_publish.connect(add_correlation_header, dispatch_uid="core.correlation.publish")
task_prerun.connect(enter_task_context, dispatch_uid="core.correlation.enter")
task_postrun.connect(leave_task_context, dispatch_uid="core.correlation.leave")


@worker_ready.connect(dispatch_uid="core.dead_letters.declare")
def _declare_dead_letter_queue(**_: object) -> None:
    # Messages rejected before the first drain would be dropped by a DLX with no queue.
    from apps.core.dead_letters import declare_dead_letter_queue

    declare_dead_letter_queue()
