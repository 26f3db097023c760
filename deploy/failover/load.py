"""Steady order load through nginx, each order under its own Idempotency-Key.

A client does what the README tells clients to do: on a 5xx, a 409 (the first attempt
still in flight) or a connection error it sends the same request again, with the same
key, until a deadline. Every attempt is recorded, so a fault's window and its failed
requests are read off the record afterwards.
"""

from __future__ import annotations

import itertools
import random
import threading
import time
import uuid
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field

import requests

RETRY_PAUSE = 0.2
GIVE_UP_AFTER = 90.0


@dataclass
class Attempt:
    sent: float
    ended: float
    status: int  # 0: connection error or timeout


@dataclass
class Order:
    key: str
    # When the order was due; its retry deadline runs from its first attempt, so that a
    # client backlog does not count as refusals.
    due: float
    attempts: list[Attempt] = field(default_factory=list)
    order_id: int | None = None


@dataclass
class OrderLoad:
    """Place ``rate`` orders per second through ``base`` until ``stop``."""

    base: str
    token: str
    product_ids: list[int]
    rate: float = 20.0
    orders: list[Order] = field(default_factory=list)
    _stopping: threading.Event = field(default_factory=threading.Event)
    _thread: threading.Thread | None = None
    _pool: ThreadPoolExecutor | None = None
    _local: threading.local = field(default_factory=threading.local)

    def start(self) -> None:
        self._pool = ThreadPoolExecutor(max_workers=128)
        self._thread = threading.Thread(target=self._schedule, daemon=True)
        self._thread.start()

    def stop(self) -> None:
        """Stop sending new orders; wait until every order got its answer or gave up."""
        self._stopping.set()
        if self._thread is not None:
            self._thread.join()
        if self._pool is not None:
            self._pool.shutdown(wait=True)

    def _schedule(self) -> None:
        interval = 1 / self.rate
        start = time.monotonic()
        for n in itertools.count():
            if self._stopping.is_set():
                return
            delay = start + n * interval - time.monotonic()
            if delay > 0:
                time.sleep(delay)
            order = Order(str(uuid.uuid4()), time.monotonic())
            self.orders.append(order)
            assert self._pool is not None  # noqa: S101 -- set by start()
            self._pool.submit(self._place, order)

    def _session(self) -> requests.Session:
        session: requests.Session | None = getattr(self._local, "session", None)
        if session is None:
            session = requests.Session()
            session.headers["Authorization"] = f"Token {self.token}"
            self._local.session = session
        return session

    def _place(self, order: Order) -> None:
        body = {"items": [{"product_id": random.choice(self.product_ids), "quantity": 1}]}  # noqa: S311 -- load, not crypto
        headers = {"Idempotency-Key": order.key}
        first = time.monotonic()
        while time.monotonic() - first < GIVE_UP_AFTER:
            sent = time.monotonic()
            try:
                response = self._session().post(
                    f"{self.base}/api/v1/orders", json=body, headers=headers, timeout=10
                )
                status = response.status_code
            except requests.RequestException:
                status = 0
            order.attempts.append(Attempt(sent, time.monotonic(), status))
            if status == 201:
                order.order_id = int(response.json()["id"])
                return
            if status and status < 500 and status != 409:
                return  # a client error: retrying would not help
            time.sleep(RETRY_PAUSE)
