"""Read replicas in the bench: targets on a private primary and streaming replica.

Both targets share one primary (with one streaming replica of it), started on first
use and stopped when the bench exits: ``replica-none`` is configured with the primary
only, ``replica-one`` with the replica too, so the two lines differ only in routing.
Profile reads run uncached (no Redis, no L1) so that every request reaches a database.
"""

from __future__ import annotations

import atexit
import http.client
import subprocess
import sys
import time
import uuid
from collections.abc import Callable
from pathlib import Path

from loadtests.bench.errors import BenchError
from loadtests.bench.site import (
    BASE_DIR,
    Request,
    Site,
    base_environment,
    manage,
    production_settings,
)

_urls: tuple[str, str] | None = None


def database_urls() -> tuple[str, str]:
    """Return the URLs of the bench's primary and replica, starting them on first use."""
    global _urls
    if _urls is None:
        from deploy.local.servers import Servers

        servers = Servers()
        atexit.register(servers.stop)
        primary = servers.start_postgres("bench-primary")
        import psycopg

        # The server starts with no application database; the replica clones it.
        with psycopg.connect(primary.rsplit("/", 1)[0] + "/postgres", autocommit=True) as conn:
            conn.execute("CREATE DATABASE highscale")
        _urls = (primary, servers.start_replica(primary, "bench-replica"))
    return _urls


def prepare(*, with_replica: bool) -> Callable[[Path], dict[str, str]]:
    """Return the preparer of a target on the shared primary, with or without the replica."""

    def run(workdir: Path) -> dict[str, str]:
        primary, replica = database_urls()
        overrides = production_settings() | {
            "DATABASE_URL": primary,
            "RATELIMIT_OVERRIDES": "api=1000000000/60",
            "CACHE_L1_MAX_ENTRIES": "0",
        }
        if with_replica:
            overrides["DATABASE_REPLICA_URLS"] = replica
        manage(base_environment() | overrides, "migrate", "--noinput")
        return overrides

    return run


def _served(site: Site, path: str, timeout: float = 30) -> None:
    """Wait until ``path`` answers 200 (the replica may still be replaying the row)."""
    host, port = site.base_url.removeprefix("http://").split(":")
    deadline = time.monotonic() + timeout
    status = 0
    while time.monotonic() < deadline:
        connection = http.client.HTTPConnection(host, int(port), timeout=10)
        try:
            connection.request("GET", path)
            status = connection.getresponse().status
        finally:
            connection.close()
        if status == 200:
            return
        time.sleep(0.05)
    raise BenchError(f"{site.target}: GET {path} still answers {status} after {timeout} s")


def _create(site: Site, request: Request, code: str) -> Request:
    object_id = int(site.manage("shell", "-c", code).strip().splitlines()[-1])
    path = request.path.format(id=object_id)
    _served(site, path)
    return Request(path, request.headers)


def user_setup(site: Site, request: Request) -> Request:
    """Create a user of its own on the primary; point the request at its profile."""
    name = f"bench-{uuid.uuid4().hex[:12]}"
    code = (
        "from apps.users.models import User; "
        f"print(User.objects.create_user({name!r}, '{name}@example.com', 'bench-pass-123').pk)"
    )
    return _create(site, request, code)


def product_setup(site: Site, request: Request) -> Request:
    """Create a product of its own on the primary; point the request at it."""
    sku = f"BENCH-{uuid.uuid4().hex[:12]}"
    code = (
        "from apps.orders.models import Product; "
        f"print(Product.objects.create(sku={sku!r}, name='Bench', price='1.00', stock=1).pk)"
    )
    return _create(site, request, code)


def router_section() -> int:
    """Run the router micro-benchmark against the shared primary and replica; return 0/1."""
    env = base_environment() | prepare(with_replica=True)(Path())
    result = subprocess.run(
        [sys.executable, "-m", "loadtests.bench.router_micro"], cwd=BASE_DIR, env=env, check=False
    )
    return result.returncode
