"""Routed reads and replica probes show up in ``/metrics``, per alias."""

from __future__ import annotations

import contextlib
import http.client
import os
import subprocess
import sys
from collections.abc import Iterator
from decimal import Decimal
from pathlib import Path

import pytest
from django.conf import settings
from prometheus_client.parser import text_string_to_metric_families
from rest_framework.test import APIClient

from apps.core.db.health import monitor
from apps.orders.models import Product
from deploy.local.processes import free_port, stop_group, wait_until
from tests.core.db.live import (
    live_replica,
    primary_lsn,
    replica_test_db_url,
    replica_urls,
    replicated,
    statements,
    wait_for,
)

ALIAS = "replica_1"
ROOT = Path(__file__).resolve().parents[3]
# django-prometheus's statement counter, by alias. It counts every statement sent, Django's
# connection set-up and health checks included, so a read adds at least one.
STATEMENTS = "django_db_execute_total"
pytestmark = pytest.mark.django_db(transaction=True, databases=["default", ALIAS])


def _samples(text: str, name: str) -> dict[str, float]:
    """Return the samples called ``name`` keyed by their ``alias`` label."""
    return {
        sample.labels["alias"]: sample.value
        for family in text_string_to_metric_families(text)
        for sample in family.samples
        if sample.name == name
    }


def _replicated_product() -> int:
    product = Product.objects.create(sku="MET-1", name="Metered", price=Decimal("1.00"), stock=1)
    replicated(ALIAS, "replication of the product")
    return product.pk


@pytest.fixture
def replica(settings) -> Iterator[str]:
    settings.DATABASE_REPLICA_MAX_LAG_SECONDS = 3600
    url = replica_urls()[0]
    with live_replica(ALIAS, url):
        caught_up = primary_lsn()
        wait_for(lambda: monitor.usable(ALIAS, caught_up), what="the replica catching up")
        yield url


def test_metrics_count_routed_reads_on_the_replica_alias_and_export_its_lag(replica):
    product_id = _replicated_product()
    client = APIClient()
    before = client.get("/metrics").content.decode()

    with statements("default", ALIAS) as counted:
        for _ in range(3):
            assert client.get(f"/api/v1/products/{product_id}").status_code == 200
    after = client.get("/metrics").content.decode()

    assert counted == {"default": 0, ALIAS: 3}
    queries_before = _samples(before, STATEMENTS)
    queries_after = _samples(after, STATEMENTS)
    assert queries_after[ALIAS] - queries_before.get(ALIAS, 0) >= 3
    # The product reads never touched the primary (the scrapes run no SQL).
    assert queries_after.get("default", 0) == queries_before.get("default", 0)
    lag = _samples(after, "replica_lag_seconds")
    assert ALIAS in lag
    assert 0 <= lag[ALIAS] < 3600
    assert _samples(after, "replica_healthy")[ALIAS] == 1


def test_a_replica_marked_down_reads_as_unhealthy_in_the_metrics(replica):
    monitor.mark_down(ALIAS, "test")
    try:
        text = APIClient().get("/metrics").content.decode()
        assert _samples(text, "replica_healthy")[ALIAS] == 0
    finally:
        monitor.probe(ALIAS)
    text = APIClient().get("/metrics").content.decode()
    assert _samples(text, "replica_healthy")[ALIAS] == 1


def _get(port: int, path: str) -> tuple[int, bytes]:
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
    try:
        connection.request("GET", path, headers={"Connection": "close"})
        response = connection.getresponse()
        return response.status, response.read()
    finally:
        connection.close()


@contextlib.contextmanager
def _gunicorn(tmp_path: Path, replica_url: str) -> Iterator[int]:
    """Serve the project from 2 workers with the real replica and multiprocess metrics."""
    db = settings.DATABASES["default"]
    primary = f"postgres://{db['USER']}@{db['HOST']}:{db['PORT']}/{db['NAME']}"
    port = free_port()
    env = {
        **os.environ,
        "DATABASE_URL": primary,
        "DATABASE_REPLICA_URLS": replica_test_db_url(replica_url),
        "DATABASE_REPLICA_MAX_LAG_SECONDS": "3600",
        "PROMETHEUS_MULTIPROC_DIR": str(tmp_path / "metrics"),
        "ACCESS_LOG_LEVEL": "WARNING",
        "GUNICORN_LOG_LEVEL": "warning",
    }
    env.pop("OTEL_EXPORTER_OTLP_ENDPOINT", None)
    command = [
        sys.executable, "-m", "gunicorn", "--config", str(ROOT / "deploy" / "gunicorn.conf.py"),
        "--workers", "2", "--bind", f"127.0.0.1:{port}", "config.wsgi:application",
    ]  # fmt: skip
    log_path = tmp_path / "gunicorn.log"
    with log_path.open("wb") as log:
        popen = subprocess.Popen(
            command, cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True
        )

    def answers() -> bool:
        assert popen.poll() is None, log_path.read_text(errors="replace")
        with contextlib.suppress(OSError):
            return _get(port, "/healthz")[0] == 200
        return False

    try:
        wait_until(answers, 60, "gunicorn")
        yield port
    finally:
        stop_group(popen, 30)


def test_gunicorn_workers_add_up_replica_reads_and_report_lag_in_one_scrape(replica, tmp_path):
    product_id = _replicated_product()
    with _gunicorn(tmp_path, replica) as port:
        statuses = [_get(port, f"/api/v1/products/{product_id}")[0] for _ in range(40)]
        assert statuses == [200] * 40
        status, body = _get(port, "/metrics")

    assert status == 200
    text = body.decode()
    # Every product read's SELECT, whichever worker served it, on the replica; none on the
    # primary.
    assert _samples(text, STATEMENTS)[ALIAS] >= 40
    assert _samples(text, STATEMENTS).get("default", 0) == 0
    assert ALIAS in _samples(text, "replica_lag_seconds")
    assert _samples(text, "replica_healthy")[ALIAS] == 1
