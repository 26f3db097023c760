"""Run a check in a forked child, as a gunicorn or Celery prefork worker starts."""

from __future__ import annotations

import os
from collections.abc import Callable


def in_child(work: Callable[[], bool]) -> int:
    """Run ``work`` in a forked child; return its exit status (0 when it returned True)."""
    pid = os.fork()
    if pid == 0:  # pragma: no cover - the child
        try:
            os._exit(0 if work() else 1)
        except BaseException:
            os._exit(2)
    _, status = os.waitpid(pid, 0)
    return os.waitstatus_to_exitcode(status)
