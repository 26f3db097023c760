"""The stack's one-off release step: ``python -m deploy.stack.release``.

Run by the first web instance before any app process starts, in one Python process
(each ``manage.py`` call would load Django again): create the database (and each
shard's, on the sharded stack) when missing,
migrate, collect static files for nginx, load demo data into an empty catalogue, and
create the local demo admin. ``DATABASE_URL`` must point at the primary itself: schema
changes do not belong in a transaction pooler.
"""

from __future__ import annotations

import io
import os
import sys
from urllib.parse import urlsplit

import psycopg


def create_database(url: str) -> None:
    """Create the URL's database on its server unless it exists."""
    parts = urlsplit(url)
    name = parts.path.lstrip("/")
    dsn = f"host={parts.hostname} port={parts.port or 5432} user={parts.username} dbname=postgres"
    with psycopg.connect(dsn, autocommit=True) as connection:
        found = connection.execute("SELECT 1 FROM pg_database WHERE datname = %s", [name])
        if found.fetchone() is None:
            print(f"creating database {name}", flush=True)
            connection.execute(
                psycopg.sql.SQL("CREATE DATABASE {}").format(psycopg.sql.Identifier(name))
            )


def main() -> int:
    create_database(os.environ["DATABASE_URL"])
    # make stack-sharded: migrate sets up every shard, in a database made here first.
    for url in filter(None, os.environ.get("DATABASE_SHARD_URLS", "").split(",")):
        create_database(url)
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings")
    import django
    from django.core.management import call_command
    from django.test.utils import override_settings

    django.setup()
    print("migrate", flush=True)
    call_command("migrate", interactive=False, verbosity=1)
    print("collectstatic", flush=True)
    call_command("collectstatic", interactive=False, verbosity=0)
    call_command("seed_demo", if_empty=True)
    # A local convenience that production mode refuses on purpose; its message names
    # runserver's port, so it is not shown.
    with override_settings(DEBUG=True):
        call_command("ensure_demo_admin", stdout=io.StringIO())
    return 0


if __name__ == "__main__":
    sys.exit(main())
