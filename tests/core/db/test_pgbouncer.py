"""The app runs behind PgBouncer in transaction mode, with Django's psycopg pool in front."""

from __future__ import annotations

import configparser
import shutil
import subprocess
from collections.abc import Iterator
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
from django.db import connections
from rest_framework.test import APIClient

from apps.orders.models import Product
from deploy.local.binaries import find_binary
from deploy.local.postgres import run_as
from deploy.local.processes import Process, free_port, port_open, wait_until
from deploy.local.servers import Servers

BASE_DIR = Path(__file__).resolve().parents[3]
CONFIG = BASE_DIR / "deploy" / "pgbouncer" / "pgbouncer.ini"


def _read_config() -> configparser.ConfigParser:
    config = configparser.ConfigParser(interpolation=None, comment_prefixes=(";", "#"))
    config.optionxform = str  # type: ignore[assignment,method-assign]
    config.read(CONFIG)
    return config


@pytest.fixture
def pgbouncer() -> Iterator[int]:
    """Run PgBouncer from the deploy config in front of the test database; return its port."""
    binary = find_binary("pgbouncer")
    primary = connections.settings["default"]
    servers = Servers()
    as_user = run_as()
    home = servers.root / "pgbouncer"
    home.mkdir()
    port = free_port()
    config = _read_config()
    config["databases"] = {
        primary["NAME"]: f"host={primary['HOST']} port={primary['PORT']} dbname={primary['NAME']}"
    }
    config["pgbouncer"].update(
        listen_addr="127.0.0.1",
        listen_port=str(port),
        unix_socket_dir=str(home),
        auth_type="trust",
        auth_file=str(home / "userlist.txt"),
        logfile=str(home / "pgbouncer.log"),
        pidfile=str(home / "pgbouncer.pid"),
    )
    (home / "userlist.txt").write_text('"postgres" ""\n')
    with open(home / "pgbouncer.ini", "w") as handle:
        config.write(handle)
    if as_user:
        for path in (home, *home.iterdir()):
            shutil.chown(path, user=as_user)
    popen = subprocess.Popen(
        [binary, str(home / "pgbouncer.ini")],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.STDOUT,
        user=as_user,
        start_new_session=True,
    )
    servers.processes.append(Process("pgbouncer", popen))
    try:
        wait_until(lambda: port_open("127.0.0.1", port), 15, "pgbouncer")
        yield port
    finally:
        servers.stop()


@pytest.fixture
def through_pgbouncer(transactional_db: None, pgbouncer: int) -> Iterator[int]:
    """Point the primary alias at PgBouncer, pooled by Django, for the test's requests."""
    default: dict[str, Any] = connections.settings["default"]
    keys = ("HOST", "PORT", "CONN_MAX_AGE", "CONN_HEALTH_CHECKS", "OPTIONS")
    saved = {key: default[key] for key in keys}
    connections["default"].close()
    default.update(
        HOST="127.0.0.1",
        PORT=str(pgbouncer),
        CONN_MAX_AGE=0,
        CONN_HEALTH_CHECKS=False,
        OPTIONS={**saved["OPTIONS"], "pool": {"min_size": 1, "max_size": 4, "timeout": 10}},
    )
    try:
        yield pgbouncer
    finally:
        connections["default"].close()
        connections["default"].close_pool()  # type: ignore[attr-defined]
        default.update(saved)


def _transactions_through(port: int, database: str) -> int:
    """Return how many transactions PgBouncer has passed on for ``database``."""
    psql = find_binary("psql")
    out = subprocess.run(
        [psql, "-h", "127.0.0.1", "-p", str(port), "-U", "postgres", "-At", "-F", ","]
        + ["-c", "SHOW STATS", "pgbouncer"],
        check=True,
        capture_output=True,
        text=True,
    ).stdout
    for line in out.splitlines():
        fields = line.split(",")
        if fields[0] == database:
            return int(fields[1])
    return 0


def test_the_deploy_config_pools_by_transaction_and_resets_nothing():
    config = _read_config()["pgbouncer"]

    assert config["pool_mode"] == "transaction"
    assert config["server_reset_query"] == ""
    assert "options" in config["ignore_startup_parameters"].split(",")


def test_the_api_works_through_pgbouncer_in_transaction_mode(through_pgbouncer, settings):
    assert settings.DATABASES["default"]["DISABLE_SERVER_SIDE_CURSORS"] is True
    database = connections.settings["default"]["NAME"]
    before = _transactions_through(through_pgbouncer, database)
    client = APIClient()
    signup = {"username": "bouncer", "email": "b@example.com", "password": "a-long-passphrase"}

    assert client.post("/api/v1/users", signup, format="json").status_code == 201
    login = client.post(
        "/api/v1/auth/token",
        {"username": "bouncer", "password": "a-long-passphrase"},
        format="json",
    )
    assert login.status_code == 200
    client.credentials(HTTP_AUTHORIZATION=f"Token {login.json()['token']}")
    assert client.get("/api/v1/users/me").json()["username"] == "bouncer"
    product = Product.objects.create(sku="PGB-1", name="Pooled", price=Decimal("2.50"), stock=5)
    order = {"items": [{"product_id": product.pk, "quantity": 2}]}
    first = client.post("/api/v1/orders", order, format="json", headers={"Idempotency-Key": "k1"})
    replay = client.post("/api/v1/orders", order, format="json", headers={"Idempotency-Key": "k1"})
    listed = client.get("/api/v1/orders")
    # `.iterator()` would need a server-side cursor kept across transactions.
    names = [p.name for p in Product.objects.iterator(chunk_size=1)]

    assert first.status_code == 201
    assert replay.status_code == 201
    assert replay.json() == first.json()
    assert [o["id"] for o in listed.json()["results"]] == [first.json()["id"]]
    assert names == ["Pooled"]
    assert connections["default"].pool is not None  # type: ignore[attr-defined]
    assert _transactions_through(through_pgbouncer, database) - before >= 8
