"""A stopped replica costs no errors: reads fall back, and come back after its restart."""

from __future__ import annotations

import re
import threading
from collections.abc import Iterator
from decimal import Decimal

import pytest
from django.conf import settings as django_settings
from rest_framework.test import APIClient

from apps.core.db.health import FallbackBudget, fallback_budget, monitor
from apps.orders.models import Product
from deploy.local.processes import ServerError
from deploy.local.servers import Servers
from tests.core.db.live import live_replica, primary_lsn, replica_urls, statements, wait_for
from tests.core.forking import in_child

ALIAS = "replica_1"
NAME = "replica-down"
pytestmark = pytest.mark.django_db(transaction=True, databases=["default", ALIAS])


@pytest.fixture(scope="module")
def replica_servers() -> Iterator[tuple[Servers, str]]:
    """Start a replica of the suite's primary that this module alone may stop."""
    servers = Servers()
    try:
        try:
            url = servers.start_replica(django_settings.DATABASE_URL, name=NAME)
        except ServerError:
            pytest.fail("the primary does not accept pg_basebackup from this host")
        yield servers, url
    finally:
        servers.stop()


@pytest.fixture
def own_replica(replica_servers, settings) -> Iterator[Servers]:
    """Route to the module's replica (running, caught up) for one test."""
    replica_urls()
    servers, url = replica_servers
    if not any(p.name == NAME for p in servers.processes):
        servers.restart_postgres(NAME)
    with live_replica(ALIAS, url):
        caught_up = primary_lsn()
        wait_for(
            lambda: monitor.usable(ALIAS, caught_up), timeout=90, what="the replica catching up"
        )
        yield servers


def _probe_settled() -> None:
    """Wake the monitor and wait for the probe it runs, so none races what follows."""
    checked = monitor.status(ALIAS).checked_at
    monitor.wake()
    wait_for(lambda: monitor.status(ALIAS).checked_at > checked, what="a probe")


def _read_many(path: str, times: int) -> list[int]:
    return [APIClient().get(path).status_code for _ in range(times)]


def test_a_stopped_replica_is_skipped_without_errors_and_used_again_after_restart(
    own_replica, settings
):
    product = Product.objects.create(sku="DOWN-1", name="Up", price=Decimal(1), stock=1)
    path = f"/api/v1/products/{product.pk}"
    written = primary_lsn()
    wait_for(lambda: monitor.usable(ALIAS, written), what="replication of the row")
    with statements(ALIAS) as counted:
        assert _read_many(path, 1) == [200]
    assert counted == {ALIAS: 1}

    # Phase 1: the replica dies under a request, before any probe notices.
    settings.DATABASE_REPLICA_CHECK_INTERVAL_SECONDS = 60
    _probe_settled()
    own_replica.stop_server(NAME)
    assert monitor.status(ALIAS).healthy is True

    assert _read_many(path, 20) == [200] * 20
    assert monitor.status(ALIAS).healthy is False

    own_replica.restart_postgres(NAME)
    settings.DATABASE_REPLICA_CHECK_INTERVAL_SECONDS = 0.2
    monitor.wake()
    wait_for(lambda: monitor.usable(ALIAS, None), what="the replica coming back")
    with statements(ALIAS) as counted:
        assert _read_many(path, 3) == [200] * 3
    assert counted == {ALIAS: 3}

    # Phase 2: the probe alone marks a stopped replica down within 1 s.
    own_replica.stop_server(NAME)
    wait_for(lambda: not monitor.status(ALIAS).healthy, timeout=1.0, what="the replica marked down")
    with statements(ALIAS) as counted:
        assert _read_many(path, 20) == [200] * 20
    assert counted == {ALIAS: 0}

    own_replica.restart_postgres(NAME)
    wait_for(lambda: monitor.usable(ALIAS, None), what="the replica coming back")
    assert _read_many(path, 1) == [200]


def test_a_forked_worker_starts_a_probing_thread_of_its_own():
    monitor.ensure_started()

    def probing_thread_running() -> bool:
        monitor.ensure_started()
        return any(t.name == "replica-monitor" for t in threading.enumerate())

    assert in_child(probing_thread_running) == 0


def test_the_fallback_budget_refuses_reads_beyond_its_rate(settings):
    settings.DATABASE_REPLICA_FALLBACK_RPS = 5
    budget = FallbackBudget()

    taken = [budget.take() for _ in range(8)]

    assert taken == [True] * 5 + [False] * 3


def test_reads_are_refused_with_503_not_piled_on_the_primary_when_the_budget_is_spent(
    own_replica, settings
):
    product = Product.objects.create(sku="BUDGET-1", name="B", price=Decimal(1), stock=1)
    own_replica.stop_server(NAME)
    wait_for(lambda: not monitor.status(ALIAS).healthy, timeout=2.0, what="the replica marked down")
    settings.DATABASE_REPLICA_FALLBACK_RPS = 3
    fallback_budget.reset()

    responses = [APIClient().get(f"/api/v1/products/{product.pk}") for _ in range(4)]

    fallback_budget.reset()
    assert [r.status_code for r in responses] == [200, 200, 200, 503]
    assert responses[3].json() == {
        "detail": "The service is temporarily overloaded; retry shortly."
    }


def test_readyz_reports_each_replicas_lag_and_a_stopped_replica_as_down(own_replica):
    up = APIClient().get("/readyz")

    assert up.status_code == 200
    replica = up.json()["checks"]["replica"]
    assert re.fullmatch(r"replica_1: ok, lag \d+\.\d{3} s", replica["detail"])
    assert replica["state"] == "ok"
    assert replica["replicas"]["replica_1"]["role"] == "replica"
    assert replica["replicas"]["replica_1"]["state"] == "ok"

    own_replica.stop_server(NAME)
    wait_for(lambda: not monitor.status(ALIAS).healthy, timeout=2.0, what="the replica marked down")
    down = APIClient().get("/readyz")

    assert down.status_code == 200
    assert down.json()["status"] == "degraded"
    replica = down.json()["checks"]["replica"]
    replicas = replica.pop("replicas")
    assert replica == {
        "ok": False,
        "state": "down",
        "detail": "replica_1: down (reads on the primary)",
        "role": None,
    }
    # The role it last reported; its metric series goes to 0 while it is down.
    assert replicas["replica_1"]["state"] == "down"
    assert replicas["replica_1"]["role"] == "replica"
    assert APIClient().get("/readyz?strict=1").status_code == 503
