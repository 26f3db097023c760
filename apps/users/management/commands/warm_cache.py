"""Load the most recently active users' public profiles into the cache."""

from __future__ import annotations

import time
from collections.abc import Callable
from functools import partial
from typing import Any

import redis
from django.conf import settings
from django.core.management.base import BaseCommand, CommandError, CommandParser
from tqdm import tqdm

from apps.core.cache import tiered_cache
from apps.core.cache.warm import Warmer
from apps.users.cache import USER_CACHE_KIND, user_profile_cache_document
from apps.users.selectors import user_public_profiles_recent


class Command(BaseCommand):
    help = (
        "Load the public profiles of the most recently active users into Redis: one "
        "query and one pipeline per batch. Idempotent; never overwrites a newer value."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--limit", type=int, default=1000, help="users to load (1000)")
        parser.add_argument("--ttl", type=int, default=3600, help="seconds to keep each (3600)")
        parser.add_argument("--batch-size", type=int, default=500, help="users per batch (500)")
        parser.add_argument(
            "--dry-run", action="store_true", help="read the users, write nothing to Redis"
        )

    def handle(self, *args: Any, **options: Any) -> None:
        limit, ttl, batch_size = options["limit"], options["ttl"], options["batch_size"]
        if limit < 0 or ttl < 1 or batch_size < 1:
            raise CommandError("--limit must be >= 0, --ttl and --batch-size >= 1.")
        dry_run: bool = options["dry_run"]
        cache = tiered_cache()
        if cache.client is None and not dry_run:
            raise CommandError(
                "The cache is not Redis (REDIS_URL and REDIS_CLUSTER_NODES are unset); "
                "nothing to warm."
            )
        warmer = None if dry_run else Warmer(cache, kind=USER_CACHE_KIND, ttl=ttl)
        started = time.perf_counter()
        if warmer is not None:
            _with_retry(warmer.begin)
        read = 0
        with tqdm(
            total=limit, unit="user", disable=not self.stdout.isatty(), leave=False
        ) as progress:
            while read < limit:
                profiles = user_public_profiles_recent(
                    offset=read,
                    limit=min(batch_size, limit - read),
                    using=settings.CACHE_FILL_DATABASE,
                )
                if warmer is not None:
                    documents = [(p["id"], user_profile_cache_document(p)) for p in profiles]
                    _with_retry(partial(warmer.store, documents))
                read += len(profiles)
                progress.update(len(profiles))
                if len(profiles) < batch_size:
                    break
        self._summary(read, time.perf_counter() - started, warmer)

    def _summary(self, read: int, seconds: float, warmer: Warmer | None) -> None:
        rate = read / seconds if seconds > 0 else 0.0
        if warmer is None:
            self.stdout.write(
                f"dry run: would warm {read} profiles; read in {seconds:.2f} s ({rate:.0f} keys/s)"
            )
            return
        stats = warmer.stats
        self.stdout.write(
            self.style.SUCCESS(
                f"warmed {read} profiles in {seconds:.2f} s ({rate:.0f} keys/s): "
                f"{stats.stored} stored, {stats.already_cached} already cached, "
                f"{stats.refused} changed meanwhile and left for the next read"
            )
        )


def _with_retry(send: Callable[[], None], attempts: int = 3) -> None:
    """Send one pipeline, again if Redis did not answer in time; then give up clearly.

    A batch is safe to send twice: the warm script never overwrites a newer value.
    """
    for attempt in range(1, attempts + 1):
        try:
            send()
        except redis.RedisError as exc:
            if attempt == attempts:
                raise CommandError(
                    f"Redis did not take a batch after {attempts} attempts ({exc}); what "
                    "was stored stays, and running warm_cache again is safe."
                ) from exc
        else:
            return
