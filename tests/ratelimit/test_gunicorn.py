"""Exactness across processes: real gunicorn with four workers sharing one Redis."""

from __future__ import annotations

import http.client
import os
import subprocess
import sys
import time
import uuid
from collections import Counter
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import cast

import pytest
from django.conf import settings
from django.db import connection

from apps.ratelimit.models import RateLimitOverride
from apps.users.models import User
from apps.users.services import token_create
from deploy.local.processes import free_port, stop_group, wait_until
from tests.factories import PASSWORD, UserFactory

BASE_DIR = Path(__file__).resolve().parents[2]
# Anonymous, so every request counts against one key (the client address), and
# answered without touching a table row the test would have to commit.
LIMITED_PATH = "/api/v1/products/999999"


class Gunicorn:
    def __init__(self, port: int, popen: subprocess.Popen[bytes], log: Path) -> None:
        self.port, self.popen, self.log = port, popen, log

    def get(self, path: str, headers: dict[str, str] | None = None) -> tuple[int, dict[str, str]]:
        conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=30)
        try:
            conn.request("GET", path, headers=headers or {})
            response = conn.getresponse()
            response.read()
            return response.status, dict(response.getheaders())
        finally:
            conn.close()


def database_url_of_the_test_db() -> str:
    db = connection.settings_dict
    password = f":{db['PASSWORD']}" if db["PASSWORD"] else ""
    return f"postgres://{db['USER']}{password}@{db['HOST']}:{db['PORT']}/{db['NAME']}"


@pytest.fixture
def gunicorn(transactional_db, tmp_path) -> Iterator[Gunicorn]:
    """Serve the project with four sync workers on the test database and Redis."""
    port = free_port()
    env = {
        **os.environ,
        "DATABASE_URL": database_url_of_the_test_db(),
        "REDIS_URL": settings.REDIS_URL,
        "RATELIMIT_REDIS_URL": settings.RATELIMIT_REDIS_URL,
        "RATELIMIT_KEY_PREFIX": settings.RATELIMIT_KEY_PREFIX,
        "RATELIMIT_OVERRIDES": "api=100/60",
        "RATELIMIT_OVERRIDE_CACHE_SECONDS": "1",
        "LOG_LEVEL": "WARNING",
        "ACCESS_LOG_LEVEL": "WARNING",
    }
    # The replica the harness may start serves the primary's own database, not the test
    # one; the workers must read the rows this test commits.
    env.pop("DATABASE_REPLICA_URLS", None)
    env.pop("PROMETHEUS_MULTIPROC_DIR", None)
    log = tmp_path / "gunicorn.log"
    command = [
        sys.executable, "-m", "gunicorn", "config.wsgi:application",
        "-w", "4", "-b", f"127.0.0.1:{port}", "--backlog", "2048",
        "--log-level", "warning",
    ]  # fmt: skip
    with log.open("wb") as out:
        popen = subprocess.Popen(
            command, cwd=BASE_DIR, env=env, stdout=out, stderr=subprocess.STDOUT,
            start_new_session=True,
        )  # fmt: skip
    server = Gunicorn(port, popen, log)

    def ready() -> bool:
        assert popen.poll() is None, log.read_text()
        try:
            return server.get("/healthz")[0] == 200
        except OSError:
            return False

    try:
        wait_until(ready, 60, "gunicorn")
        yield server
    finally:
        stop_group(popen, 15)


def test_a_thousand_requests_from_200_clients_admit_exactly_the_limit(gunicorn):
    def client(_: int) -> list[int]:
        return [gunicorn.get(LIMITED_PATH)[0] for _ in range(5)]

    with ThreadPoolExecutor(200) as pool:
        statuses = Counter(status for batch in pool.map(client, range(200)) for status in batch)

    # 404 is the view's own answer for a missing product: the request got through.
    assert statuses == {404: 100, 429: 900}


def test_an_admin_override_reaches_every_worker_within_seconds(gunicorn):
    user = cast(User, UserFactory(username=f"partner-{uuid.uuid4().hex[:8]}"))
    headers = {"Authorization": f"Token {token_create(username=user.username, password=PASSWORD)}"}
    statuses = [gunicorn.get(LIMITED_PATH, headers)[0] for _ in range(101)]
    assert statuses.count(404) == 100
    assert statuses[-1] == 429

    RateLimitOverride.objects.create(user=user, policy="api", limit=1000, window=60)

    # Every worker reads the table again once its copy is older than
    # RATELIMIT_OVERRIDE_CACHE_SECONDS (1 s here); the extra half second covers a copy
    # whose read was under way as the row was committed.
    time.sleep(1.5)
    answers = [gunicorn.get(LIMITED_PATH, headers) for _ in range(8)]

    assert [status for status, _ in answers] == [404] * 8
    assert {fields["RateLimit-Policy"] for _, fields in answers} == {'"default";q=1000;w=60'}
