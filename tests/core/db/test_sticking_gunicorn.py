"""Read-your-writes for a token client that sends nothing back, across 4 gunicorn workers.

The workers read a real streaming replica whose replay the test pauses; the user's write
position is shared through a Redis of the test's own, which it may also freeze.
"""

from __future__ import annotations

import json
import os
import signal
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, cast

import pytest
from django.conf import settings

from apps.core.db.health import monitor
from apps.core.db.lsn import parse_lsn
from apps.orders.models import Product
from apps.users.models import User
from apps.users.services import token_create
from deploy.local.processes import wait_until
from deploy.local.servers import Servers
from tests.core.db.live import (
    caught_up_replica,
    replay_paused,
    replica_test_db_url,
    replicated,
    wait_for,
)
from tests.factories import PASSWORD, ProductFactory, UserFactory
from tests.gunicorn import Gunicorn, serving

ROOT = Path(__file__).resolve().parents[3]
ALIAS = "replica_1"
pytestmark = pytest.mark.django_db(transaction=True, databases=["default", ALIAS])


@dataclass
class Answer:
    status: int
    headers: dict[str, str]
    body: Any


@dataclass
class Server:
    """The 4-worker gunicorn, answering parsed JSON, with no cookies kept."""

    gunicorn: Gunicorn

    def call(self, method: str, path: str, token: str | None = None, body: Any = None) -> Answer:
        """One request on a fresh connection (so the workers share them out), no cookies."""
        headers = {"Connection": "close"}
        if token:
            headers["Authorization"] = f"Token {token}"
        if method == "POST":
            headers["Idempotency-Key"] = uuid.uuid4().hex
        status, fields, raw = self.gunicorn.request(method, path, headers, body)
        return Answer(status, fields, json.loads(raw) if raw else None)

    def statuses(self, path: str, token: str | None = None, times: int = 12) -> list[int]:
        return [self.call("GET", path, token).status for _ in range(times)]


@dataclass
class Redis:
    url: str
    pid: int


@pytest.fixture
def replica(settings) -> Iterator[str]:
    # The lag bound never excludes the paused replica here: only the positions decide.
    settings.DATABASE_REPLICA_MAX_LAG_SECONDS = 3600
    with caught_up_replica(ALIAS) as url:
        yield url


@pytest.fixture
def redis() -> Iterator[Redis]:
    servers = Servers()
    try:
        url = servers.start_redis()
        yield Redis(url, servers.processes[-1].popen.pid)
    finally:
        servers.stop()


@pytest.fixture
def extra_env() -> dict[str, str]:
    """Settings a test gives its server on top of the fixture's (parametrize to change)."""
    return {}


@pytest.fixture
def server(
    replica: str, redis: Redis, tmp_path: Path, extra_env: dict[str, str]
) -> Iterator[Server]:
    """The project on deploy/gunicorn.conf.py, 4 workers, the test database and replica."""
    env = {
        "DATABASE_REPLICA_URLS": replica_test_db_url(replica),
        "DATABASE_REPLICA_MAX_LAG_SECONDS": "3600",
        "DATABASE_REPLICA_CHECK_INTERVAL_MS": "100",
        # The cache, and with it the sticking store, on the Redis this test may freeze;
        # the rate limiter on the suite's.
        "REDIS_URL": redis.url,
        "RATELIMIT_REDIS_URL": settings.RATELIMIT_REDIS_URL,
        "RATELIMIT_KEY_PREFIX": settings.RATELIMIT_KEY_PREFIX,
        "RATELIMIT_OVERRIDES": "api=1000000/60",
        "PROMETHEUS_MULTIPROC_DIR": str(tmp_path / "metrics"),
        "GUNICORN_LOG_LEVEL": "warning",
        "OTEL_EXPORTER_OTLP_ENDPOINT": "",
        **extra_env,
    }
    with serving(tmp_path, env, config=ROOT / "deploy" / "gunicorn.conf.py") as gunicorn:
        yield Server(gunicorn)


def _signed_in(server: Server, name: str) -> str:
    """Return a token of a new user whose first request (a ``last_active`` write) is done."""
    user = cast(User, UserFactory(username=f"{name}-{uuid.uuid4().hex[:8]}"))
    token = token_create(username=user.username, password=PASSWORD)
    assert server.call("GET", "/api/v1/users/me", token).status == 200
    return token


def test_a_token_client_sending_nothing_back_reads_its_writes_on_every_worker(server, replica):
    alice, bob = _signed_in(server, "alice"), _signed_in(server, "bob")
    stock = cast(Product, ProductFactory(stock=100))
    replicated(ALIAS, "replication of the users and the product")

    with replay_paused(replica):
        # Committed on the primary only, before Alice's writes below.
        unseen = cast(Product, ProductFactory())
        order = server.call(
            "POST", "/api/v1/orders", alice, {"items": [{"product_id": stock.pk, "quantity": 1}]}
        )
        assert order.status == 201, order.body
        patched = server.call("PATCH", "/api/v1/users/me", alice, {"display_name": "Alice New"})
        assert patched.status == 200, patched.body
        order_id = order.body["id"]

        assert server.statuses(f"/api/v1/orders/{order_id}", alice) == [200] * 12
        listed = [server.call("GET", "/api/v1/orders", alice) for _ in range(12)]
        assert [[o["id"] for o in a.body["results"]] for a in listed] == [[order_id]] * 12
        profiles = [server.call("GET", "/api/v1/users/me", alice) for _ in range(12)]
        assert {a.body["display_name"] for a in profiles} == {"Alice New"}
        # Alice reads the primary, whatever she asks for; Bob, who wrote nothing, the
        # replica, which has not replayed the product.
        assert server.statuses(f"/api/v1/products/{unseen.pk}", alice) == [200] * 12
        assert server.statuses(f"/api/v1/products/{unseen.pk}", bob) == [404] * 12

    position = parse_lsn(patched.headers["X-Read-After"])
    assert position is not None
    wait_for(
        lambda: (monitor.status(ALIAS).replay_lsn or 0) >= position,
        what="the replica replaying past Alice's writes",
    )
    with replay_paused(replica):
        later = cast(Product, ProductFactory())
        # Once every worker's probe has seen the replay, Alice reads the replica again.
        wait_until(
            lambda: server.statuses(f"/api/v1/products/{later.pk}", alice) == [404] * 12,
            30,
            "Alice's reads returning to the replica",
        )


def test_with_redis_unreachable_a_users_reads_go_to_the_primary_without_a_5xx(
    server, replica, redis
):
    alice = _signed_in(server, "alice")
    replicated(ALIAS, "replication of the user")
    with replay_paused(replica):
        unseen = cast(Product, ProductFactory())
        assert server.statuses(f"/api/v1/products/{unseen.pk}", alice, times=4) == [404] * 4
        os.kill(redis.pid, signal.SIGSTOP)  # Redis hangs: connections open, no answers
        try:
            during = server.statuses(f"/api/v1/products/{unseen.pk}", alice)
            anonymous = server.statuses(f"/api/v1/products/{unseen.pk}", times=4)
        finally:
            os.kill(redis.pid, signal.SIGCONT)
    assert during == [200] * 12
    # An anonymous client has no position to lose: it reads the replica.
    assert anonymous == [404] * 4


@pytest.mark.parametrize("extra_env", [{"DATABASE_REPLICA_FALLBACK_RPS": "1"}])
def test_past_the_fallback_budget_an_unknown_position_is_neither_stale_nor_refused(
    server, replica, redis
):
    # One fallback read a second per worker: most of the reads below find it spent.
    alice = _signed_in(server, "alice")
    replicated(ALIAS, "replication of the user")
    with replay_paused(replica):
        unseen = cast(Product, ProductFactory())
        os.kill(redis.pid, signal.SIGSTOP)
        try:
            during = server.statuses(f"/api/v1/products/{unseen.pk}", alice, times=24)
        finally:
            os.kill(redis.pid, signal.SIGCONT)
    # Each read took the primary's position as its own, which the paused replica has
    # not reached: the primary answered, never the stale replica, never a 503.
    assert during == [200] * 24


def test_a_token_made_while_the_replica_lags_is_accepted_at_once(server, replica):
    # Signed up through the server, so its password hash is the server's kind.
    name = f"carol-{uuid.uuid4().hex[:8]}"
    credentials = {"username": name, "password": PASSWORD}
    signup = server.call("POST", "/api/v1/users", body={**credentials, "email": f"{name}@x.test"})
    assert signup.status == 201, signup.body
    replicated(ALIAS, "replication of the user")
    with replay_paused(replica):
        made = server.call("POST", "/api/v1/auth/token", body=credentials)
        assert made.status == 200, made.body
        assert server.statuses("/api/v1/users/me", made.body["token"], times=8) == [200] * 8
