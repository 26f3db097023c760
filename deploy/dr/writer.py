"""A thread that places orders at a steady rate through the order service.

Each order goes through ``order_create`` (the same service the API calls, with its
outbox event), so what the drill counts is what the application commits. A failed
write closes the thread's connection and is retried: the next attempt connects afresh,
to wherever the ``default`` database now points (a restored primary on the same port,
or a promoted replica found by libpq's ``target_session_attrs=read-write``).

Import after ``django.setup()``.
"""

from __future__ import annotations

import contextlib
import threading
import time
import uuid

from django.db import DEFAULT_DB_ALIAS, Error, connection, connections
from django.db.backends.signals import connection_created

from apps.orders.services import OrderItem, order_create
from deploy.dr.report import Commit

RETRY_SECONDS = 0.02


class OrderWriter(threading.Thread):
    """Commit one order every ``interval`` seconds until stopped; keep the commit log."""

    def __init__(self, *, owner_id: int, product_id: int, interval: float) -> None:
        super().__init__(name="dr-order-writer", daemon=True)
        self.owner_id = owner_id
        self.product_id = product_id
        self.interval = interval
        self.commits: list[Commit] = []
        self.failed_attempts = 0
        self.last_error = ""
        self.connections_opened = 0
        # When this thread's current connection was established (connection_created),
        # so that a commit is attributed to the server it reached: one made before the
        # failure, or one found after it, however long the connecting took.
        self._connected_at = time.monotonic()
        self._stopping = threading.Event()

    def _connected(self, sender: object, **kwargs: object) -> None:
        if threading.current_thread() is self:
            self._connected_at = time.monotonic()
            self.connections_opened += 1

    def run(self) -> None:
        connection_created.connect(self._connected, weak=False, dispatch_uid=id(self))
        try:
            next_at = time.monotonic()
            while not self._stopping.is_set():
                if self._place_one():
                    next_at = max(next_at + self.interval, time.monotonic())
                    self._stopping.wait(max(0.0, next_at - time.monotonic()))
                else:
                    self._stopping.wait(RETRY_SECONDS)
        finally:
            connection_created.disconnect(dispatch_uid=id(self))
            with contextlib.suppress(Error):
                connection.close()

    def _place_one(self) -> bool:
        key = f"dr-drill-{uuid.uuid4()}"
        try:
            order_create(
                owner_id=self.owner_id,
                items=[OrderItem(product_id=self.product_id, quantity=1)],
                idempotency_key=key,
            )
        except Exception as exc:  # any failed write is one the drill retries
            # Not only DatabaseError: Django's InterfaceError ("connection already
            # closed") is no subclass of it, and a writer thread that died would look
            # like a server that never came back.
            self.failed_attempts += 1
            self.last_error = str(exc).strip().splitlines()[-1] if str(exc).strip() else repr(exc)
            # A broken connection is not reused: the next attempt builds a fresh wrapper
            # and reconnects, whatever state (an atomic block cut short) the old one had.
            with contextlib.suppress(Error):
                connection.close()
            with contextlib.suppress(AttributeError):  # none made in this thread yet
                del connections[DEFAULT_DB_ALIAS]
            return False
        self.commits.append(Commit(key=key, at=time.monotonic(), connected_at=self._connected_at))
        return True

    def first_commit_after(self, moment: float) -> float | None:
        """Return when the first order on a connection opened after ``moment`` committed."""
        return next((c.at for c in self.commits if c.connected_at > moment), None)

    def stop(self) -> None:
        """Stop placing orders and wait for the thread to end."""
        self._stopping.set()
        self.join(30)
