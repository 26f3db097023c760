"""Fixtures shared by the whole suite."""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from typing import Any, cast

import pytest
from django.core.cache import cache
from rest_framework.test import APIClient

from apps.orders.models import Product
from apps.users.models import User
from apps.users.services import token_create
from deploy.local.processes import scratch_dir
from deploy.local.sentinel import SentinelSet
from deploy.local.servers import Servers
from tests.factories import PASSWORD, ProductFactory, UserFactory

# The Celery worker and warehouse-server fixtures of the event tests, and the session's
# RabbitMQ cluster (started only for the tests that ask for it).
pytest_plugins = ["tests.events_worker", "tests.rabbitmq_cluster"]


@pytest.fixture(scope="session")
def django_db_setup(django_db_setup: None) -> None:
    """Create the test databases, then mirror the replica aliases in every thread."""
    from tests.core.db.live import mirror_replicas

    mirror_replicas()


@pytest.fixture(autouse=True)
def _fast_password_hashing(settings: Any) -> None:
    # PBKDF2's deliberate slowness would dominate the run; hashing itself is still real.
    settings.PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]


@pytest.fixture(autouse=True)
def _empty_cache() -> None:
    """Start every test with an empty cache, so no entry outlives the rows it describes."""
    cache.clear()


@pytest.fixture(autouse=True)
def _outbox_publishing_not_paused() -> None:
    """Start every test with the outbox's after-commit publishing on.

    A test that makes a publish fail opens this process's outbox breaker for a few
    seconds; that must not leak into the next test.
    """
    from apps.core.events.outbox import outbox_breaker

    outbox_breaker().reset()


@pytest.fixture
def private_servers() -> Iterator[Servers]:
    """Yield an empty set of private servers, every one stopped after the test."""
    servers = Servers()
    try:
        yield servers
    finally:
        servers.stop()


@pytest.fixture(scope="session")
def sentinel_set() -> Iterator[SentinelSet]:
    """Start one Redis Sentinel set (master, replica, three sentinels) for the run."""
    root = scratch_dir("highscale-sentinel-")
    sentinels = SentinelSet(root)
    sentinels.start()
    try:
        yield sentinels
    finally:
        sentinels.stop()
        shutil.rmtree(root, ignore_errors=True)


@pytest.fixture
def sentinels(sentinel_set: SentinelSet) -> SentinelSet:
    """Return the run's Sentinel set with a live master and replica (the last test's
    killed master back as a replica)."""
    if sentinel_set.killed is not None:
        sentinel_set.revive()
    return sentinel_set


@pytest.fixture
def api_client() -> APIClient:
    """Return an anonymous API client."""
    return APIClient()


@pytest.fixture
def user(db: None) -> User:
    """Return a saved, active user whose password is ``PASSWORD``."""
    return cast(User, UserFactory())


@pytest.fixture
def token(user: User) -> str:
    """Return an API token for ``user``."""
    return token_create(username=user.username, password=PASSWORD)


@pytest.fixture
def auth_client(token: str) -> APIClient:
    """Return an API client that authenticates as ``user`` with a token."""
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Token {token}")
    return client


@pytest.fixture
def product(db: None) -> Product:
    """Return a product priced 9.99 with 100 in stock."""
    return cast(Product, ProductFactory())
