"""The drill's PostgreSQL steps: a primary with WAL archiving, base backup, restore, replica
and promotion, on the shared local launcher (``deploy.local.postgres``).

Every node lives in a directory of its own (``<home>/data``, its log and socket) and
listens on 127.0.0.1 only. As root, PostgreSQL runs as the ``postgres`` user, which
also owns the WAL archive and the base backup. Nothing here touches any other cluster.
"""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

from deploy.local import postgres
from deploy.local.postgres import PostgresServer, owned_dir, run_as
from deploy.local.processes import ServerError

CONF_FILE = Path(__file__).resolve().with_name("postgresql.dr.conf")
DATABASE = postgres.DATABASE


class ClusterError(ServerError):
    """A PostgreSQL node could not be restored."""


def archive_settings(archive: Path) -> str:
    """Return the postgresql.conf lines that archive finished WAL segments to ``archive``."""
    return (
        f"\n# Set by the drill: this run's WAL archive.\n"
        f"archive_command = 'test ! -f {archive}/%f && cp %p {archive}/%f'\n"
    )


def create_primary(
    home: Path, archive: Path, *, wal_segsize_mb: int = 1, durable: bool = True
) -> PostgresServer:
    """Initialise and start a primary with deploy/dr/postgresql.dr.conf and WAL archiving.

    Small WAL segments (1 MB rather than 16) keep the archive small: ``archive_timeout``
    closes a segment every few seconds under load. ``durable=False`` (for tests, whose
    data is thrown away) skips every fsync; what reaches the archive is the same.
    """
    node = PostgresServer("primary", owned_dir(home))
    postgres.initdb(node.data, f"--wal-segsize={wal_segsize_mb}", sync=durable)
    with (node.data / "postgresql.conf").open("a", encoding="utf-8") as conf:
        conf.write(f"\n# From {CONF_FILE.name}.\n" + CONF_FILE.read_text(encoding="utf-8"))
        conf.write(archive_settings(archive))
        if not durable:
            conf.write("fsync = off\n")
    node.start()
    postgres.tool("createdb", "-h", "127.0.0.1", "-p", str(node.port), "-U", "postgres", DATABASE)
    return node


def base_backup(
    source: PostgresServer, target: Path, *, standby: bool = False, durable: bool = True
) -> None:
    """Take a base backup of ``source`` into ``target`` (plain format, with its WAL).

    With ``standby`` the copy is set up as a streaming replica of ``source`` (``-R``);
    ``durable=False`` skips its fsync.
    """
    owned_dir(target.parent)
    postgres.base_backup(source.port, target, standby=standby, sync=durable)


def restore(node: PostgresServer, backup: Path, archive: Path) -> None:
    """Rebuild ``node``'s data directory from ``backup``, replay the archived WAL, start it.

    ``recovery.signal`` makes the server fetch every archived segment with
    ``restore_command`` until the archive runs out, then end recovery on a new
    timeline and accept writes: recovery to the end of the archived WAL. Return once
    it accepts writes.
    """
    if node.process is not None:
        raise ClusterError(f"{node.name} is still running; stop it before restoring")
    shutil.rmtree(node.data, ignore_errors=True)
    copy = subprocess.run(  # noqa: S603 -- fixed binary, our paths
        ["cp", "-a", str(backup), str(node.data)],  # noqa: S607 -- coreutils' cp
        capture_output=True,
        text=True,
        user=run_as(),
        check=False,
    )
    if copy.returncode != 0:
        raise ClusterError(f"copying the base backup failed: {copy.stderr}")
    with (node.data / "postgresql.conf").open("a", encoding="utf-8") as conf:
        conf.write(
            "\n# Set by the drill's restore: replay the WAL archive to its end.\n"
            f"restore_command = 'cp {archive}/%f %p'\n"
            "recovery_target_timeline = 'latest'\n"
        )
    (node.data / "recovery.signal").touch()
    user = run_as()
    if user:
        shutil.chown(node.data / "recovery.signal", user=user, group=user)
    node.start()
    node.wait_writable()


def create_replica(primary: PostgresServer, home: Path, *, durable: bool = True) -> PostgresServer:
    """Clone ``primary`` with ``pg_basebackup -R`` and start it as a streaming replica."""
    node = PostgresServer("replica", owned_dir(home))
    base_backup(primary, node.data, standby=True, durable=durable)
    node.start()
    return node


def promote(node: PostgresServer) -> None:
    """Promote a standby to primary and wait until it accepts writes."""
    postgres.tool("pg_ctl", "promote", "-w", "-t", "60", "-D", str(node.data))
