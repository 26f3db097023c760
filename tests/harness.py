"""Pytest plugin that points the suite at real servers before Django is set up.

Loaded with ``-p tests.harness`` (see pyproject.toml), so it runs before pytest-django
reads the settings. URLs already in the environment are used as they are; for each one
missing, a private server is started and stopped at the end of the run.
"""

from __future__ import annotations

import atexit
import os
from collections.abc import Generator

import pytest

from deploy.local.servers import Servers, broker_url_or_start

_servers: Servers | None = None

TEST_ENVIRONMENT = {
    "DJANGO_DEBUG": "false",
    "DJANGO_SECRET_KEY": "test-secret-key-for-the-highscale-suite-only-0123456789abcdef",
    "DJANGO_ALLOWED_HOSTS": "testserver,localhost,127.0.0.1",
    "DJANGO_SESSION_COOKIE_SECURE": "false",
    "DJANGO_CSRF_COOKIE_SECURE": "false",
    # The suite logs in and calls the API far more often than the real policies allow;
    # tests/ratelimit sets the real ones explicitly.
    "RATELIMIT_OVERRIDES": "api=1000000/60,login=1000000/60",
    # The limiter's production timeout (50 ms) is shorter than a loaded 2-core box's
    # pauses; a timeout would fail the login policy closed (503) in tests that are not
    # about it. tests/ratelimit sets the real bound where it matters.
    "RATELIMIT_REDIS_TIMEOUT_MS": "1000",
    # Queues of this run only, so parallel runs sharing a RabbitMQ never take each
    # other's messages (tests/events_worker.py deletes them at the end).
    "EVENTS_QUEUE_PREFIX": f"test{os.getpid()}",
}


def start_services() -> Servers:
    """Fill DATABASE_URL, REDIS_URL and CELERY_BROKER_URL, starting what is missing."""
    servers = Servers()
    atexit.register(servers.stop)
    try:
        if not os.environ.get("DATABASE_URL"):
            os.environ["DATABASE_URL"] = servers.start_postgres()
            # A streaming replica of our own primary; its test database arrives by
            # physical replication when pytest-django creates it on the primary.
            if not os.environ.get("DATABASE_REPLICA_URLS"):
                os.environ["DATABASE_REPLICA_URLS"] = servers.start_replica(
                    os.environ["DATABASE_URL"]
                )
        if not os.environ.get("REDIS_URL"):
            os.environ["REDIS_URL"] = servers.start_redis()
        if not os.environ.get("CELERY_BROKER_URL"):
            os.environ["CELERY_BROKER_URL"] = broker_url_or_start(servers)
    except BaseException:
        servers.stop()
        raise
    for key, value in TEST_ENVIRONMENT.items():
        os.environ.setdefault(key, value)
    return servers


@pytest.hookimpl(wrapper=True)
def pytest_load_initial_conftests(
    early_config: pytest.Config, parser: pytest.Parser, args: list[str]
) -> Generator[None, None, None]:
    global _servers
    if _servers is None and not os.environ.get("HIGHSCALE_NO_SERVERS"):
        _servers = start_services()
    return (yield)


def pytest_report_header(config: pytest.Config) -> list[str]:
    return [
        f"highscale: DATABASE_URL={os.environ.get('DATABASE_URL')}",
        f"highscale: DATABASE_REPLICA_URLS={os.environ.get('DATABASE_REPLICA_URLS')}",
        f"highscale: REDIS_URL={os.environ.get('REDIS_URL')}",
        f"highscale: CELERY_BROKER_URL={os.environ.get('CELERY_BROKER_URL')}",
    ]


def pytest_unconfigure(config: pytest.Config) -> None:
    global _servers
    if _servers is not None:
        _servers.stop()
        _servers = None
