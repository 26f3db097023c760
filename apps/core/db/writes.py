"""Notice writes made with raw SQL on the primary, which the router never sees.

``Model.save()`` and querysets ask the router for a write alias, which marks the scope
as having written. ``connection.cursor().execute("UPDATE …")`` does not; without this
wrapper the scope's next reads would go to a replica that lacks the write, and the
client would get no read-after token for it.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import Any

from django.db.backends.base.base import BaseDatabaseWrapper

from apps.core.db.state import current_state

# The first keyword of a statement that changes data or schema.
_WRITE_RE = re.compile(
    r"^\s*(?:INSERT|UPDATE|DELETE|MERGE|UPSERT|TRUNCATE|COPY|CREATE|ALTER|DROP|GRANT|REVOKE"
    r"|CALL|DO|REFRESH|CLUSTER|REINDEX|VACUUM|COMMENT|LOCK)\b",
    re.IGNORECASE,
)
# A data-modifying CTE (``WITH moved AS (DELETE … RETURNING …) SELECT …``).
_CTE_WRITE_RE = re.compile(r"^\s*WITH\b.*\b(?:INSERT|UPDATE|DELETE|MERGE)\b", re.I | re.S)


def is_write(sql: str) -> bool:
    """Return whether the statement ``sql`` may change data or schema."""
    return bool(_WRITE_RE.match(sql) or _CTE_WRITE_RE.match(sql))


class RawWriteDetector:
    """Execute wrapper of the primary that marks the scope as written on a raw write."""

    def __call__(
        self,
        execute: Callable[..., Any],
        sql: str,
        params: Any,
        many: bool,
        context: dict[str, Any],
    ) -> Any:
        state = current_state()
        if state is not None and not state.wrote and is_write(sql):
            state.wrote = True
            state.lsn_stale = True
        return execute(sql, params, many, context)


def install_raw_write_detector(
    sender: object, connection: BaseDatabaseWrapper, **kwargs: object
) -> None:
    """Attach the detector to each new connection of the primary (``connection_created``)."""
    if connection.alias == "default" and not any(
        isinstance(w, RawWriteDetector) for w in connection.execute_wrappers
    ):
        connection.execute_wrappers.append(RawWriteDetector())
