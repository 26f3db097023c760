"""Carry the read-after token from the code that enqueues a task into the task.

``before_task_publish`` puts the enqueuing scope's token (brought up to date with its
committed writes) into the message headers; ``task_prerun`` opens the task's own
routing scope from it and ``task_postrun`` closes it, so a task enqueued on commit
after a write never reads a replica that has not replayed that write. A task acting for
a user (``sticking.act_for_user``) leaves its write position under that user.
"""

from __future__ import annotations

from typing import Any

from apps.core.db.lsn import format_lsn, parse_lsn, settle_read_after
from apps.core.db.state import current_state, enter_scope, exit_scope
from apps.core.db.sticking import remember_writes

READ_AFTER_TASK_HEADER = "read_after"
# An attribute of ours on Celery's task request, namespaced.
_SCOPE_ATTRIBUTE = "highscale_routing_scope"


def _enclosing_token() -> int | None:
    state = current_state()
    return settle_read_after(state) if state is not None else None


def add_read_after_header(headers: dict[str, Any] | None = None, **kwargs: Any) -> None:
    """Put the current scope's read-after LSN in an outgoing task's headers."""
    token = _enclosing_token()
    if token is not None and headers is not None:
        headers[READ_AFTER_TASK_HEADER] = format_lsn(token)


def open_task_scope(task: Any = None, **kwargs: Any) -> None:
    """Open the task's routing scope from its header (or, run eagerly, its caller's)."""
    if task is None:
        return
    raw = getattr(task.request, READ_AFTER_TASK_HEADER, None)
    token = parse_lsn(raw) if isinstance(raw, str) else None
    if token is None:
        # An eager task runs inside its caller's scope without a published message.
        token = _enclosing_token()
    _, scope = enter_scope(read_after=token)
    setattr(task.request, _SCOPE_ATTRIBUTE, scope)


def close_task_scope(task: Any = None, **kwargs: Any) -> None:
    """Close the scope ``open_task_scope`` opened for this task."""
    scope = getattr(task.request, _SCOPE_ATTRIBUTE, None) if task is not None else None
    if scope is not None:
        setattr(task.request, _SCOPE_ATTRIBUTE, None)
        state = current_state()
        try:
            # Only a task acting for a user leaves a position behind; for any other the
            # primary's WAL position would be read for nobody (a query per task).
            if state is not None and state.user_id is not None:
                remember_writes(state)
        finally:
            exit_scope(scope)


def connect_task_signals() -> None:
    """Connect the three receivers to Celery's signals (idempotent)."""
    from celery import signals

    signals.before_task_publish.connect(add_read_after_header, weak=False, dispatch_uid="db-ra-pub")
    signals.task_prerun.connect(open_task_scope, weak=False, dispatch_uid="db-ra-pre")
    signals.task_postrun.connect(close_task_scope, weak=False, dispatch_uid="db-ra-post")
