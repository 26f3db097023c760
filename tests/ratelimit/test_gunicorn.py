"""Exactness across processes: real gunicorn with four workers sharing one Redis."""

from __future__ import annotations

import time
import uuid
from collections import Counter
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from typing import cast

import pytest
from django.conf import settings

from apps.ratelimit.models import RateLimitOverride
from apps.users.models import User
from apps.users.services import token_create
from tests.factories import PASSWORD, UserFactory
from tests.gunicorn import Gunicorn, serving

# Anonymous, so every request counts against one key (the client address), and
# answered without touching a table row the test would have to commit.
LIMITED_PATH = "/api/v1/products/999999"


@pytest.fixture
def gunicorn(transactional_db, tmp_path) -> Iterator[Gunicorn]:
    """Serve the project with four sync workers on the test database and Redis."""
    env = {
        "REDIS_URL": settings.REDIS_URL,
        "RATELIMIT_REDIS_URL": settings.RATELIMIT_REDIS_URL,
        "RATELIMIT_KEY_PREFIX": settings.RATELIMIT_KEY_PREFIX,
        "RATELIMIT_OVERRIDES": "api=100/60",
        "RATELIMIT_OVERRIDE_CACHE_SECONDS": "1",
        "RATELIMIT_REDIS_TIMEOUT_MS": str(settings.RATELIMIT_REDIS_TIMEOUT_MS),
    }
    with serving(tmp_path, env) as server:
        yield server


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
