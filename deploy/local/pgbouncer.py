"""A local PgBouncer: the shipped configuration, pointed at one server, in its own home."""

from __future__ import annotations

import configparser
import shutil
from pathlib import Path

from deploy.local.postgres import DATABASE, owned_dir, run_as

SHIPPED = Path(__file__).resolve().parents[1] / "pgbouncer" / "pgbouncer.ini"


def write_config(
    home: Path, *, listen_port: int, server_host: str, server_port: int, listen_addr: str = ""
) -> Path:
    """Write deploy/pgbouncer/pgbouncer.ini into ``home``, serving ``highscale`` from
    ``server_host:server_port`` on ``listen_addr:listen_port``; return the file.

    PgBouncer runs as the PostgreSQL user, which owns its home and files. Trust
    authentication: loopback or private addresses only, like the servers behind it.
    """
    home = owned_dir(home)
    config = configparser.ConfigParser(interpolation=None, comment_prefixes=(";", "#"))
    config.optionxform = str  # type: ignore[assignment,method-assign]
    config.read(SHIPPED)
    config["databases"] = {
        DATABASE: f"host={server_host} port={server_port} dbname={DATABASE}",
    }
    config["pgbouncer"].update(
        listen_addr=listen_addr or "127.0.0.1",
        listen_port=str(listen_port),
        unix_socket_dir=str(home),
        auth_type="trust",
        auth_file=str(home / "userlist.txt"),
        logfile="",
        pidfile=str(home / "pgbouncer.pid"),
    )
    (home / "userlist.txt").write_text('"postgres" ""\n')
    path = home / "pgbouncer.ini"
    with open(path, "w") as handle:
        config.write(handle)
    user = run_as()
    if user:
        for item in home.iterdir():
            shutil.chown(item, user=user)
    return path
