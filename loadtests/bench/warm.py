"""Measure ``warm_cache`` against the reference's per-user loop, as a ratio.

Runs on a private PostgreSQL and Redis (started here, stopped at the end): 10,000 users,
then the reference loop (one SELECT per user and one SETEX each) and ``warm_cache``
(one query and one pipeline per batch), alternating over the rounds.

    .venv/bin/python -m loadtests.bench.warm [--users 10000] [--rounds 3]
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import time
from collections.abc import Sequence
from io import StringIO


def main(argv: Sequence[str] | None = None) -> int:
    """Run the comparison and print one line per contender; return the exit status."""
    parser = argparse.ArgumentParser(prog="python -m loadtests.bench.warm")
    parser.add_argument("--users", type=int, default=10_000)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--batch-size", type=int, default=1000)
    options = parser.parse_args(argv)

    from deploy.local.servers import Servers

    servers = Servers()
    try:
        os.environ["DATABASE_URL"] = servers.start_postgres()
        os.environ["REDIS_URL"] = servers.start_redis()
        os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings")
        os.environ["LOG_LEVEL"] = "WARNING"
        _create_database(os.environ["DATABASE_URL"])
        return _compare(options.users, options.rounds, options.batch_size)
    finally:
        servers.stop()


def _create_database(url: str) -> None:
    import psycopg

    admin_url = url.rsplit("/", 1)[0] + "/postgres"
    with psycopg.connect(admin_url, autocommit=True) as conn:
        conn.execute("CREATE DATABASE highscale")


def _compare(users: int, rounds: int, batch_size: int) -> int:
    import django

    django.setup()
    from django.core.management import call_command

    call_command("migrate", verbosity=0)
    _seed(users)
    reference: list[float] = []
    ours: list[float] = []
    for number in range(rounds):
        order = [("reference", reference), ("warm_cache", ours)]
        for name, results in order if number % 2 == 0 else reversed(order):
            _flush()
            started = time.perf_counter()
            if name == "reference":
                _reference_loop(users)
            else:
                call_command("warm_cache", limit=users, batch_size=batch_size, stdout=StringIO())
            results.append(time.perf_counter() - started)
            print(f"  round {number + 1}/{rounds}   {name}: {results[-1]:.2f} s", file=sys.stderr)
    ref, mine = statistics.fmean(reference), statistics.fmean(ours)
    print(f"reference loop (SELECT + SETEX per user), {users} users: {ref:.2f} s "
          f"({users / ref:.0f} keys/s)")  # fmt: skip
    print(f"warm_cache --batch-size {batch_size}, {users} users: {mine:.2f} s "
          f"({users / mine:.0f} keys/s)  ratio {ref / mine:.1f}x")  # fmt: skip
    return 0


def _seed(count: int) -> None:
    from django.utils import timezone

    from apps.users.models import User

    now = timezone.now()
    User.objects.bulk_create(
        [
            User(username=f"warm{i}", email=f"warm{i}@example.com", last_active=now)
            for i in range(count)
        ],
        batch_size=2000,
    )


def _flush() -> None:
    from apps.core.cache import redis_client

    client = redis_client()
    if client is None:
        raise RuntimeError("REDIS_URL is not set")
    client.flushdb()


def _reference_loop(limit: int) -> None:
    """The reference's warm: the ids, then per user a SELECT and a SETEX."""
    from apps.core.cache import redis_client
    from apps.users.models import User

    client = redis_client()
    if client is None:
        raise RuntimeError("REDIS_URL is not set")
    ids = User.objects.order_by("-last_active").values_list("id", flat=True)[:limit]
    for user_id in ids:
        user = User.objects.get(pk=user_id)
        profile = {
            "id": user.pk,
            "username": user.username,
            "display_name": user.display_name,
            "date_joined": user.date_joined.isoformat(),
        }
        client.set(f"user:{user_id}", json.dumps(profile), ex=3600)  # SETEX


if __name__ == "__main__":
    sys.exit(main())
