"""Order events through a real worker, RabbitMQ and PostgreSQL."""

from __future__ import annotations

import io

import pytest
from django.core.management.base import CommandError

from apps.core.events.models import DeadLetter, OutboxEvent, ProcessedEvent
from apps.orders.models import Order, Product
from tests.events_worker import wait_for
from tests.orders.placing import place_order

pytestmark = pytest.mark.django_db(transaction=True)


def _place(client, product_id: int, quantity: int, key: str, **headers):
    order = place_order(client, product_id, key, quantity=quantity, **headers)
    assert order["status"] == "pending"
    return order["id"]


def _settled(order_id: int) -> Order | None:
    order = Order.objects.get(pk=order_id)
    return order if order.status != Order.Status.PENDING else None


def test_placed_order_is_confirmed_emailed_and_sent_to_the_warehouse(
    event_worker, warehouse, auth_client, user
):
    warehouse.reset()
    product = Product.objects.create(sku="W-1", name="Widget", price="2.50", stock=5)

    order_id = _place(auth_client, product.pk, 2, "worker-1", HTTP_X_REQUEST_ID="corr-abc-12345")

    order = wait_for(lambda: _settled(order_id), 30, "the order to settle")
    assert order.status == Order.Status.CONFIRMED
    product.refresh_from_db()
    assert product.stock == 3
    wait_for(lambda: warehouse.requests_for(order_id), 30, "the warehouse POST")
    wait_for(lambda: event_worker.emails_mentioning(f"Order {order_id} confirmed"), 30, "email")
    assert event_worker.emails_mentioning(f"Order {order_id} confirmed") == 1
    assert len(warehouse.requests_for(order_id)) == 1
    events = OutboxEvent.objects.order_by("created_at")
    assert [e.event_type for e in events] == ["order.created", "order.confirmed"]
    assert {e.correlation_id for e in events} == {"corr-abc-12345"}
    assert ProcessedEvent.objects.count() == 3


def test_request_correlation_id_is_in_the_consumers_log_records(event_worker, auth_client, user):
    product = Product.objects.create(sku="W-2", name="Widget", price="1.00", stock=5)

    order_id = _place(auth_client, product.pk, 1, "corr-1", HTTP_X_REQUEST_ID="corr-log-98765")

    wait_for(lambda: event_worker.emails_mentioning(f"Order {order_id} confirmed"), 30, "email")
    # The email and the webhook run side by side in the pool; the webhook may end last.
    wait_for(
        lambda: f"notify_warehouse: order {order_id} delivered" in event_worker.log(),
        30,
        "the webhook's log line",
    )
    lines = [line for line in event_worker.log().splitlines() if "corr-log-98765" in line]
    assert any(f"reserve_inventory: order {order_id} confirmed" in line for line in lines)
    assert any(f"send_confirmation_email: sent for order {order_id}" in line for line in lines)
    assert any(f"notify_warehouse: order {order_id}" in line for line in lines)


def test_worker_replaces_a_database_connection_that_broke_between_tasks(
    event_worker, auth_client, user
):
    from django.db import connection

    from apps.core.events.outbox import outbox_relay_close

    product = Product.objects.create(sku="W-PG", name="Widget", price="1.00", stock=5)
    first = _place(auth_client, product.pk, 1, "pg-1")
    assert wait_for(lambda: _settled(first), 30, "the first order").status == "confirmed"
    # Stop this process's relay (and its database connection); then end every other
    # session of the test database: the worker's, kept open from one task to the next.
    assert outbox_relay_close()
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity "
            "WHERE datname = current_database() AND pid <> pg_backend_pid()"
        )
        (terminated,) = cursor.fetchone()
    assert terminated >= 1

    second = _place(auth_client, product.pk, 1, "pg-2")

    order = wait_for(lambda: _settled(second), 30, "the second order")
    assert order.status == Order.Status.CONFIRMED
    assert DeadLetter.objects.exists() is False


def test_fifty_concurrent_orders_for_the_last_ten_units_confirm_exactly_ten(
    event_worker, user, token
):
    from concurrent.futures import ThreadPoolExecutor

    from django.db import connection
    from rest_framework.test import APIClient

    product = Product.objects.create(sku="LAST-10", name="Scarce", price="1.00", stock=10)

    def place(n: int):
        client = APIClient()
        client.credentials(HTTP_AUTHORIZATION=f"Token {token}")
        try:
            return _place(client, product.pk, 1, f"last-{n}")
        finally:
            connection.close()

    with ThreadPoolExecutor(max_workers=10) as pool:
        order_ids = list(pool.map(place, range(50)))

    def all_settled() -> bool:
        return not Order.objects.filter(pk__in=order_ids, status=Order.Status.PENDING).exists()

    wait_for(all_settled, 90, "all 50 orders to settle")
    statuses = list(Order.objects.filter(pk__in=order_ids).values_list("status", flat=True))
    assert statuses.count(Order.Status.CONFIRMED) == 10
    assert statuses.count(Order.Status.REJECTED) == 40
    product.refresh_from_db()
    assert product.stock == 0
    reasons = set(
        Order.objects.filter(pk__in=order_ids, status=Order.Status.REJECTED).values_list(
            "status_reason", flat=True
        )
    )
    assert reasons == {f"Insufficient stock for product {product.pk}."}


def test_order_is_confirmed_once_when_the_pool_process_is_killed_mid_reservation(
    event_worker, auth_client, user
):
    import psycopg

    product = Product.objects.create(sku="KILL-1", name="Fragile", price="1.00", stock=7)
    # Parks reserve_inventory inside its UPDATE, yet lets the order line (FOR KEY SHARE) in.
    with psycopg.connect(event_worker.database_url) as blocker:
        blocker.execute(
            "SELECT stock FROM orders_product WHERE id = %s FOR NO KEY UPDATE", [product.pk]
        )

        order_id = _place(auth_client, product.pk, 3, "kill-1")

        def reservation_waiting() -> bool:
            with psycopg.connect(event_worker.database_url, autocommit=True) as probe:
                row = probe.execute(
                    "SELECT count(*) FROM pg_stat_activity WHERE wait_event_type = 'Lock' "
                    "AND query LIKE 'UPDATE \"orders_product\"%%'"
                ).fetchone()
            return bool(row and row[0])

        wait_for(reservation_waiting, 30, "reserve_inventory to block on the row lock")
        killed = event_worker.kill_pool()
        assert killed
        blocker.rollback()

    order = wait_for(lambda: _settled(order_id), 60, "the redelivered order to settle")
    assert order.status == Order.Status.CONFIRMED
    product.refresh_from_db()
    assert product.stock == 4
    created = OutboxEvent.objects.get(event_type="order.created")
    assert (
        ProcessedEvent.objects.filter(
            event_id=created.id, consumer="orders.reserve_inventory"
        ).count()
        == 1
    )
    assert OutboxEvent.objects.filter(event_type="order.confirmed").count() == 1


def test_warehouse_500_three_times_then_200_is_delivered_once_with_growing_delays(
    event_worker, warehouse, auth_client, user
):
    warehouse.reset(500, 500, 500, then=200)
    product = Product.objects.create(sku="WH-1", name="Crate", price="1.00", stock=5)

    order_id = _place(auth_client, product.pk, 1, "wh-1")

    wait_for(lambda: len(warehouse.requests_for(order_id)) >= 4, 60, "four webhook attempts")
    event = wait_for(
        lambda: OutboxEvent.objects.filter(event_type="order.confirmed").first(), 10, "event"
    )
    wait_for(
        lambda: ProcessedEvent.objects.filter(
            event_id=event.id, consumer="orders.notify_warehouse"
        ).exists(),
        10,
        "the delivery to be recorded",
    )
    attempts = warehouse.requests_for(order_id)
    assert len(attempts) == 4
    assert {a[2]["Idempotency-Key"] for a in attempts} == {str(event.id)}
    delays = [later[0] - earlier[0] for earlier, later in zip(attempts, attempts[1:], strict=False)]
    assert delays[0] < delays[1] < delays[2]
    assert not DeadLetter.objects.exists()


def test_warehouse_failing_for_good_is_dead_lettered_and_replay_delivers_once(
    event_worker, warehouse, auth_client, user
):
    from django.core.management import call_command

    warehouse.reset(then=500)
    product = Product.objects.create(sku="WH-2", name="Crate", price="1.00", stock=5)

    order_id = _place(auth_client, product.pk, 1, "wh-2", HTTP_X_REQUEST_ID="corr-wh-424242")

    letter = wait_for(
        lambda: DeadLetter.objects.filter(task="orders.notify_warehouse").first(), 60, "dead letter"
    )
    # EVENTS_MAX_RETRIES=3 in the test worker: the first try and three retries.
    assert letter.attempts == 4
    assert len(warehouse.requests_for(order_id)) == 4
    assert letter.reason == "RetryableError: warehouse answered 500"
    assert letter.correlation_id == "corr-wh-424242"
    assert letter.payload["kwargs"]["order_id"] == order_id

    warehouse.reset(then=200)
    call_command("replay_dead_letters", "--no-drain")

    wait_for(lambda: warehouse.requests_for(order_id), 30, "the replayed POST")
    letter.refresh_from_db()
    assert letter.status == DeadLetter.Status.REPLAYED
    # Replaying it again is refused: the letter is no longer pending.
    with pytest.raises(CommandError):
        call_command(
            "replay_dead_letters", "--no-drain", "--id", str(letter.pk), stderr=io.StringIO()
        )
    event_id = letter.payload["kwargs"]["event_id"]
    wait_for(
        lambda: ProcessedEvent.objects.filter(
            event_id=event_id, consumer="orders.notify_warehouse"
        ).exists(),
        10,
        "the delivery to be recorded",
    )
    assert len(warehouse.requests_for(order_id)) == 1


def test_orders_placed_while_the_broker_is_unreachable_succeed_and_are_processed_once(
    event_worker, user, token
):
    import subprocess
    from concurrent.futures import ThreadPoolExecutor

    import requests

    from apps.core.events.outbox import outbox_sweep
    from deploy.local.processes import free_port, port_open

    product = Product.objects.create(sku="DOWN-1", name="Bolt", price="1.00", stock=60)
    port = free_port()
    env = {
        **event_worker.env,
        # Nothing listens there: every publish of the web process fails.
        "CELERY_BROKER_URL": f"amqp://guest:guest@127.0.0.1:{free_port()}//",
    }
    web = subprocess.Popen(
        [".venv/bin/gunicorn", "config.wsgi", "-b", f"127.0.0.1:{port}", "-w", "2", "-t", "60"],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        wait_for(lambda: port_open("127.0.0.1", port), 30, "gunicorn")

        def place(n: int):
            response = requests.post(
                f"http://127.0.0.1:{port}/api/v1/orders",
                json={"items": [{"product_id": product.pk, "quantity": 1}]},
                headers={"Authorization": f"Token {token}", "Idempotency-Key": f"down-{n}"},
                timeout=30,
            )
            return response.status_code, response.json()

        with ThreadPoolExecutor(max_workers=8) as pool:
            results = list(pool.map(place, range(100)))
    finally:
        web.terminate()
        web.wait(20)

    assert [status for status, _ in results] == [201] * 100
    order_ids = [body["id"] for _, body in results]
    assert OutboxEvent.objects.filter(sent_at__isnull=True).count() == 100
    assert Order.objects.filter(pk__in=order_ids, status=Order.Status.PENDING).count() == 100

    # The broker is back (this process reaches it): the sweep publishes what was left.
    assert outbox_sweep(min_age_seconds=0) == 100

    def all_settled() -> bool:
        return not Order.objects.filter(pk__in=order_ids, status=Order.Status.PENDING).exists()

    wait_for(all_settled, 120, "all 100 orders to settle")
    statuses = list(Order.objects.filter(pk__in=order_ids).values_list("status", flat=True))
    assert statuses.count(Order.Status.CONFIRMED) == 60
    assert statuses.count(Order.Status.REJECTED) == 40
    product.refresh_from_db()
    assert product.stock == 0
    created = OutboxEvent.objects.filter(event_type="order.created")
    assert created.count() == 100
    assert (
        ProcessedEvent.objects.filter(
            consumer="orders.reserve_inventory", event_id__in=created.values("id")
        ).count()
        == 100
    )

    def emails_sent() -> bool:
        return (
            ProcessedEvent.objects.filter(consumer="orders.send_confirmation_email").count() == 60
        )

    wait_for(emails_sent, 60, "60 confirmation emails")
    assert sum(event_worker.emails_mentioning(f"Order {pk} confirmed") for pk in order_ids) == 60


def test_admin_replay_action_after_the_webhook_recovers_delivers_exactly_once(
    event_worker, warehouse, auth_client, user, admin_client
):
    warehouse.reset(then=500)
    product = Product.objects.create(sku="WH-3", name="Crate", price="1.00", stock=5)
    order_id = _place(auth_client, product.pk, 1, "wh-3")
    letter = wait_for(
        lambda: DeadLetter.objects.filter(task="orders.notify_warehouse").first(), 60, "dead letter"
    )
    event_id = letter.payload["kwargs"]["event_id"]
    warehouse.reset(then=200)

    response = admin_client.post(
        "/admin/core/deadletter/",
        {"action": "replay", "_selected_action": [letter.pk]},
        follow=True,
    )

    assert response.redirect_chain == [("/admin/core/deadletter/", 302)]
    assert [str(m) for m in response.context["messages"]] == ["1 dead letter(s) replayed."]
    wait_for(lambda: warehouse.requests_for(order_id), 30, "the replayed POST")
    wait_for(
        lambda: ProcessedEvent.objects.filter(
            event_id=event_id, consumer="orders.notify_warehouse"
        ).exists(),
        10,
        "the delivery to be recorded",
    )
    letter.refresh_from_db()
    assert letter.status == DeadLetter.Status.REPLAYED
    # A second replay of the same letter is refused with a message; nothing is sent again.
    again = admin_client.post(
        "/admin/core/deadletter/",
        {"action": "replay", "_selected_action": [letter.pk]},
        follow=True,
    )
    assert [str(m) for m in again.context["messages"]] == [
        f"Dead letter {letter.pk} is not pending.",
        "0 dead letter(s) replayed.",
    ]
    assert len(warehouse.requests_for(order_id)) == 1
    assert [r[1]["event_id"] for r in warehouse.requests_for(order_id)] == [event_id]
