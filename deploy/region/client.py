"""The drill's client, outside both regions: orders through the front door, retried.

Each order has its own Idempotency-Key and is sent again, with the same key, after a
5xx, a 409 (the first attempt still in flight) or a connection error, until it gets its
201. What the client was told is the drill's ground truth: an order acknowledged with
201 must exist after the failover, once.
"""

from __future__ import annotations

import threading
import time
import uuid
from dataclasses import dataclass

import requests

TIMEOUT_SECONDS = 5.0
RETRY_SECONDS = 0.05


@dataclass(frozen=True)
class Ack:
    """An order the client was told 201 for."""

    key: str
    at: float  # time.monotonic() of the 201
    sent_at: float  # when the attempt that got it was sent
    latency: float  # seconds of the attempt that got it
    attempts: int
    region: str  # X-Region of the answer (the front door's server)


def sign_up(base_url: str, name: str) -> str:
    """Create a user through the front door and return an API token for it."""
    password = uuid.uuid4().hex
    user = {"username": name, "email": f"{name}@example.invalid", "password": password}
    response = requests.post(f"{base_url}/api/v1/users", json=user, timeout=30)
    response.raise_for_status()
    login = {"username": name, "password": password}
    response = requests.post(f"{base_url}/api/v1/auth/token", json=login, timeout=30)
    response.raise_for_status()
    return str(response.json()["token"])


class OrderClient(threading.Thread):
    """Place one order every ``interval`` seconds until stopped; keep every 201."""

    def __init__(self, base_url: str, token: str, product_id: int, interval: float) -> None:
        super().__init__(name="region-order-client", daemon=True)
        self.url = f"{base_url}/api/v1/orders"
        self.headers = {"Authorization": f"Token {token}"}
        self.body = {"items": [{"product_id": product_id, "quantity": 1}]}
        self.interval = interval
        self.acks: list[Ack] = []
        self.failed_attempts = 0
        self.unanswered: list[str] = []  # keys still without a 201 when the client stopped
        self.other_statuses: dict[int, int] = {}
        self._stopping = threading.Event()

    def run(self) -> None:
        session = requests.Session()
        next_at = time.monotonic()
        while not self._stopping.is_set():
            self._place(session, f"region-drill-{uuid.uuid4()}")
            next_at = max(next_at + self.interval, time.monotonic())
            self._stopping.wait(max(0.0, next_at - time.monotonic()))

    def _place(self, session: requests.Session, key: str) -> None:
        attempts = 0
        while not self._stopping.is_set():
            attempts += 1
            started = time.monotonic()
            try:
                response = session.post(
                    self.url, json=self.body, timeout=TIMEOUT_SECONDS,
                    headers={**self.headers, "Idempotency-Key": key},
                )  # fmt: skip
            except requests.RequestException:
                self.failed_attempts += 1
                session.close()
                session = requests.Session()
                self._stopping.wait(RETRY_SECONDS)
                continue
            if response.status_code == 201:
                now = time.monotonic()
                region = response.headers.get("X-Region", "?")
                self.acks.append(Ack(key, now, started, now - started, attempts, region))
                return
            self.failed_attempts += 1
            if response.status_code < 500 and response.status_code != 409:
                # Never expected: counted, and the key is not sent again.
                code = response.status_code
                self.other_statuses[code] = self.other_statuses.get(code, 0) + 1
                return
            self._stopping.wait(RETRY_SECONDS)
        self.unanswered.append(key)

    def stop(self) -> None:
        self._stopping.set()
        self.join(TIMEOUT_SECONDS + 5)
