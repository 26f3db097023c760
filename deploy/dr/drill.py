"""Disaster-recovery drill: measure RPO and RTO of a restore and of a replica promotion.

Run from the repository root (``make dr-drill``)::

    python -m deploy.dr.drill [--workdir var/dr] [--write-seconds 6] [--rate 20]

It builds its own PostgreSQL primary under ``--workdir`` (never the stack's data) with
deploy/dr/postgresql.dr.conf (WAL archiving, ``archive_timeout``), migrates the app's
schema into it and takes a base backup. Then, while a writer thread places orders
through the order service:

(a) the primary is killed (SIGKILL), its data directory removed, and it is restored
    from the base backup plus the archived WAL;
(b) a streaming replica is added, the primary is killed again and the replica promoted;
    the writer finds it through libpq's ``target_session_attrs=read-write``.

Each failure is reported as RPO (orders acknowledged before it and missing after it,
and the seconds of data they span) and RTO (seconds until the next order committed),
against the reference's tier table. Exit status 1 when the drill itself fails.
"""

from __future__ import annotations

import argparse
import contextlib
import logging
import os
import shutil
import sys
import time
from collections.abc import Callable, Iterator, Sequence
from decimal import Decimal
from pathlib import Path
from typing import TYPE_CHECKING

ROOT = Path(__file__).resolve().parents[2]
if str(ROOT) not in sys.path:  # run as a script rather than with -m
    sys.path.insert(0, str(ROOT))

from deploy.dr import cluster  # noqa: E402 -- after the path fix above
from deploy.dr.report import Measurement, measure, render  # noqa: E402
from deploy.local.postgres import PostgresServer, owned_dir  # noqa: E402
from deploy.local.processes import ServerError  # noqa: E402

if TYPE_CHECKING:
    from deploy.dr.writer import OrderWriter

MARKER = ".dr-drill"
RECOVERY_TIMEOUT = 180.0
# Environment the drill must not inherit: it talks to its own database only, with
# in-process cache and tasks, so nothing reaches the stack's Redis or RabbitMQ.
FOREIGN_ENVIRONMENT = (
    "DATABASE_REPLICA_URLS",
    "REDIS_URL",
    "CELERY_BROKER_URL",
    "PROMETHEUS_MULTIPROC_DIR",
    "OTEL_EXPORTER_OTLP_ENDPOINT",
    "WAREHOUSE_WEBHOOK_URL",
)


class DrillError(RuntimeError):
    """The drill could not complete a step."""


class Clock:
    """Print progress lines stamped with seconds since the drill started."""

    def __init__(self) -> None:
        self.start = time.monotonic()

    def say(self, message: str) -> None:
        print(f"[{time.monotonic() - self.start:7.2f} s] {message}", flush=True)


def prepare_workdir(path: Path) -> Path:
    """Empty ``path`` for a new run; refuse a non-empty directory the drill did not make."""
    path = path.resolve()
    if path.exists() and any(path.iterdir()) and not (path / MARKER).exists():
        raise DrillError(f"{path} is not empty and was not made by the drill; choose --workdir")
    shutil.rmtree(path, ignore_errors=True)
    path.mkdir(parents=True)
    os.chmod(path, 0o755)  # noqa: S103 -- the postgres user must traverse it
    (path / MARKER).write_text("made by deploy/dr/drill.py; emptied on every run\n")
    return path


def setup_django(database_url: str) -> None:
    """Configure Django for the drill's own database, with in-process cache and tasks."""
    for name in FOREIGN_ENVIRONMENT:
        os.environ.pop(name, None)
    os.environ["DATABASE_URL"] = database_url
    # The order confirmation e-mails of the drill's orders go nowhere.
    os.environ["DJANGO_EMAIL_BACKEND"] = "django.core.mail.backends.locmem.EmailBackend"
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings")
    os.environ.setdefault("LOG_LEVEL", "CRITICAL")
    import django

    django.setup()
    # A write that fails because its server just died is the drill's point, not news.
    for name in ("django", "django.db.backends"):
        logging.getLogger(name).setLevel(logging.CRITICAL)


def seed() -> tuple[int, int]:
    """Create the schema, one customer and one product with ample stock; return their ids."""
    from django.core.management import call_command

    from apps.orders.models import Product
    from apps.users.models import User

    call_command("migrate", verbosity=0, interactive=False)
    user = User.objects.create_user(username="dr-drill", email="dr-drill@example.invalid")
    product = Product.objects.create(
        sku="DR-DRILL", name="Drill order", price=Decimal("1.00"), stock=10**9
    )
    return user.pk, product.pk


def point_default_at(nodes: Sequence[PostgresServer]) -> None:
    """Point the ``default`` database at whichever of ``nodes`` accepts writes."""
    from django.conf import settings
    from django.db import connections

    database = settings.DATABASES["default"]
    database["HOST"] = ",".join("127.0.0.1" for _ in nodes)
    database["PORT"] = ",".join(str(node.port) for node in nodes)
    database["OPTIONS"]["target_session_attrs"] = "read-write"
    connections.close_all()


def order_keys() -> set[str]:
    """Return the Idempotency-Key of every order in the database ``default`` points at."""
    from django.db import connections

    from apps.orders.models import Order

    connections.close_all()
    return set(Order.objects.values_list("idempotency_key", flat=True))


def wait_for(
    what: str, value: Callable[[], float | None], timeout: float, why: Callable[[], str]
) -> float:
    """Poll ``value`` until it is not None and return it; raise after ``timeout`` s."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        found = value()
        if found is not None:
            return found
        time.sleep(0.01)
    raise DrillError(f"{what} did not happen within {timeout:.0f} s: {why()}")


def first_write_after(writer: OrderWriter, failed_at: float, scenario: str) -> float:
    """Wait for the writer's first order on a server reached after the failure."""

    def served() -> float | None:
        if not writer.is_alive():
            raise DrillError(f"{scenario} the order writer stopped: {writer.last_error}")
        return writer.first_commit_after(failed_at)

    return wait_for(
        f"{scenario} a committed order after the failure",
        served,
        RECOVERY_TIMEOUT,
        lambda: (
            f"the last write failed with: {writer.last_error or 'none failed'} "
            f"({len(writer.commits)} orders, {writer.connections_opened} connections)"
        ),
    )


@contextlib.contextmanager
def writing(owner_id: int, product_id: int, rate: float) -> Iterator[OrderWriter]:
    """Run an order writer for the duration of the block."""
    from deploy.dr.writer import OrderWriter

    writer = OrderWriter(owner_id=owner_id, product_id=product_id, interval=1 / rate)
    writer.start()
    try:
        # The clock starts once orders flow, so that the failure always hits a writer
        # that has committed on the server about to fail.
        wait_for(
            "the first order",
            lambda: writer.commits[0].at if writer.commits else None,
            RECOVERY_TIMEOUT,
            lambda: f"the last write failed with: {writer.last_error or 'none failed'}",
        )
        yield writer
    finally:
        writer.stop()


def scenario_restore(
    clock: Clock,
    primary: PostgresServer,
    backup: Path,
    archive: Path,
    ids: tuple[int, int],
    args: argparse.Namespace,
    backup_done_at: float,
) -> Measurement:
    """(a) Lose the primary's data directory; restore it from base backup + WAL archive."""
    with writing(*ids, args.rate) as writer:
        time.sleep(args.write_seconds)
        failed_at = time.monotonic()
        primary.kill()
        # Gone at once for the server; the files are deleted once the drill has measured,
        # so that deleting them on a busy disk does not count as recovery time.
        destroyed = primary.data.rename(primary.home / "data.destroyed")
        clock.say(
            "(a) primary killed (SIGKILL), its data directory taken away "
            f"(+{time.monotonic() - failed_at:.2f} s)"
        )
        cluster.restore(primary, backup, archive)
        clock.say(
            "(a) restored from the base backup + archived WAL, accepting connections "
            f"(+{time.monotonic() - failed_at:.2f} s)"
        )
        served_at = first_write_after(writer, failed_at, "(a)")
        clock.say(f"(a) first order committed after the failure (+{served_at - failed_at:.2f} s)")
        time.sleep(args.after_seconds)
    shutil.rmtree(destroyed)
    recovered = order_keys()
    replayed = sum(
        1
        for c in writer.commits
        if c.at > backup_done_at and c.connected_at <= failed_at and c.key in recovered
    )
    clock.say(
        f"(a) {replayed} orders committed after the base backup came back from the archived WAL; "
        f"writer retried {writer.failed_attempts} times"
    )
    return measure(
        scenario="(a) restore",
        commits=writer.commits,
        recovered_keys=recovered,
        failed_at=failed_at,
        served_at=served_at,
    )


def scenario_promote(
    clock: Clock,
    primary: PostgresServer,
    replica: PostgresServer,
    ids: tuple[int, int],
    args: argparse.Namespace,
) -> Measurement:
    """(b) Lose the primary while orders are written; promote the streaming replica."""
    point_default_at([primary, replica])
    with writing(*ids, args.rate) as writer:
        time.sleep(args.write_seconds)
        failed_at = time.monotonic()
        primary.kill()
        clock.say("(b) primary killed (SIGKILL)")
        cluster.promote(replica)
        clock.say(f"(b) replica promoted (pg_ctl promote) (+{time.monotonic() - failed_at:.2f} s)")
        served_at = first_write_after(writer, failed_at, "(b)")
        clock.say(f"(b) first order committed after the failure (+{served_at - failed_at:.2f} s)")
        time.sleep(args.after_seconds)
    clock.say(
        f"(b) writer retried {writer.failed_attempts} times, "
        f"opened {writer.connections_opened} connections"
    )
    return measure(
        scenario="(b) promote",
        commits=writer.commits,
        recovered_keys=order_keys(),
        failed_at=failed_at,
        served_at=served_at,
    )


def wait_streaming(primary: PostgresServer) -> None:
    """Wait until a replica streams from ``primary``."""
    from django.db import connections

    def streaming() -> float | None:
        with connections["default"].cursor() as cursor:
            cursor.execute("SELECT count(*) FROM pg_stat_replication WHERE state = 'streaming'")
            row = cursor.fetchone()
        return 1.0 if row and row[0] else None

    wait_for("streaming replication", streaming, 60, lambda: "see the replica's postgres.log")


def run(args: argparse.Namespace) -> list[Measurement]:
    """Run both scenarios; stop every server started, whatever happens."""
    clock = Clock()
    workdir = prepare_workdir(args.workdir)
    archive = owned_dir(workdir / "wal_archive", 0o700)
    nodes: list[PostgresServer] = []
    succeeded = False
    try:
        durable = not args.no_fsync
        primary = cluster.create_primary(workdir / "primary", archive, durable=durable)
        nodes.append(primary)
        clock.say(f"primary on 127.0.0.1:{primary.port}, data {primary.data}, archive {archive}")
        setup_django(primary.url)
        ids = seed()
        clock.say("schema migrated, customer and product created")
        backup = workdir / "base_backup"
        cluster.base_backup(primary, backup, durable=durable)
        backup_done_at = time.monotonic()
        clock.say(f"base backup taken with pg_basebackup into {backup}")
        restored = scenario_restore(clock, primary, backup, archive, ids, args, backup_done_at)
        replica = cluster.create_replica(primary, workdir / "replica", durable=durable)
        nodes.append(replica)
        wait_streaming(primary)
        clock.say(f"streaming replica on 127.0.0.1:{replica.port}")
        promoted = scenario_promote(clock, primary, replica, ids, args)
        succeeded = True
    finally:
        with contextlib.suppress(Exception):
            from django.db import connections

            connections.close_all()
        for node in reversed(nodes):
            node.stop()
        if succeeded:  # a failed drill keeps everything for a post-mortem
            for path in [workdir / "base_backup", archive, *(node.data for node in nodes)]:
                shutil.rmtree(path, ignore_errors=True)
        kept = "server logs" if succeeded else "logs and data"
        clock.say(f"servers stopped; {kept} left in {workdir}")
    return [restored, promoted]


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0] if __doc__ else None)
    parser.add_argument(
        "--workdir",
        type=Path,
        default=ROOT / "var" / "dr",
        help="directory for the drill's own clusters, archive and backup (emptied first)",
    )
    parser.add_argument(
        "--write-seconds",
        type=float,
        default=6.0,
        help="seconds of order writing before each failure (default 6)",
    )
    parser.add_argument("--rate", type=float, default=20.0, help="orders per second (default 20)")
    parser.add_argument(
        "--after-seconds",
        type=float,
        default=2.0,
        help="seconds of writing after recovery, before counting (default 2)",
    )
    parser.add_argument(
        "--no-fsync",
        action="store_true",
        help="skip every fsync (for tests on a busy disk; the figures then mean less)",
    )
    args = parser.parse_args(argv)
    for name in ("write_seconds", "rate", "after_seconds"):
        if getattr(args, name) <= 0:
            parser.error(f"--{name.replace('_', '-')} must be greater than zero")
    return args


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    try:
        measurements = run(args)
    except (ServerError, DrillError, ValueError) as exc:
        print(f"dr-drill failed: {exc}", file=sys.stderr)
        return 1
    print()
    print(render(measurements), end="")
    print(
        "Notes: the RPO of (a) is bounded by archive_timeout (2 s, deploy/dr/postgresql.dr.conf)\n"
        "plus the archive copy: WAL not yet archived dies with the primary's disk. (b)\n"
        "replicates asynchronously, so it can lose what was not streamed yet. RTO here is\n"
        "recovery run by a script on one machine; a human following deploy/dr/RUNBOOK.md adds\n"
        "the time to detect the failure, decide and type, which dominates in practice."
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
