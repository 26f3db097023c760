"""A worker on the development default, the console email backend, logs each mail at INFO.

The backend prints the mail; Celery logs what a task prints (``celery.redirected``),
at WARNING unless told otherwise. A confirmation mail is routine output, and a WARNING
per order would bury the real ones. Real worker, RabbitMQ and PostgreSQL.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from apps.orders.models import Order, Product
from tests.events_worker import (
    WarehouseServer,
    Worker,
    running_worker,
    wait_for,
    worker_environment,
)
from tests.events_worker import test_database_url as database_url_of_the_test_db
from tests.orders.placing import place_order

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture
def console_worker(
    transactional_db: None, warehouse: WarehouseServer, tmp_path: Path
) -> Iterator[Worker]:
    """Run a worker whose mails go to the console backend; stopped before the flush."""
    env = {
        **worker_environment(database_url_of_the_test_db(), warehouse),
        "DJANGO_EMAIL_BACKEND": "django.core.mail.backends.console.EmailBackend",
        # Out of DEBUG, the log is JSON lines (one record each, the mail in its message).
        "DJANGO_DEBUG": "false",
        "DJANGO_SECRET_KEY": "console-email-test-key-of-fifty-characters-or-more-000",
    }
    with running_worker(tmp_path, env) as worker:
        yield worker


def _records(worker: Worker) -> list[dict[str, Any]]:
    records = []
    for line in worker.log().splitlines():
        if line.startswith("{"):
            records.append(json.loads(line))
    return records


def _mail_records(worker: Worker, order_id: int) -> list[dict[str, Any]]:
    subject = f"Subject: Order {order_id} confirmed"
    return [r for r in _records(worker) if subject in str(r.get("message", ""))]


def test_a_confirmation_mail_on_the_console_is_logged_at_info_not_warning(
    console_worker, warehouse, auth_client, user
):
    warehouse.reset()
    product = Product.objects.create(sku="MAIL-1", name="Widget", price="1.00", stock=5)
    order_id = place_order(auth_client, product.pk, "console-mail-1")["id"]

    mails = wait_for(lambda: _mail_records(console_worker, order_id), 30, "the mail in the log")

    assert Order.objects.get(pk=order_id).status == Order.Status.CONFIRMED
    assert [(r["logger"], r["level"]) for r in mails] == [("celery.redirected", "INFO")]
    redirected = [r for r in _records(console_worker) if r["logger"] == "celery.redirected"]
    assert all(r["level"] == "INFO" for r in redirected)
