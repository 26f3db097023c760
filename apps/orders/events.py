"""The order events, their consumers, and the services those consumer tasks call.

``ORDER_EVENTS`` is the table the app registers at start: each event type with its
payload fields and its consumer tasks (in apps/orders/tasks.py) with their queues.
Adding a consumer is one task and one entry here. Each service applies its effect at
most once per event (``consume_once``), so a redelivered or replayed message changes
nothing. Stock is reserved with conditional UPDATEs (``stock >= quantity``), never
read-then-write, so concurrent orders cannot oversell.
"""

from __future__ import annotations

import json
import logging
import smtplib
import urllib.error
import urllib.request
from contextlib import nullcontext
from urllib.parse import urlsplit

from django.conf import settings
from django.core.mail import send_mail
from django.db import transaction
from django.db.models import F
from django.utils import timezone

from apps.core.db.sticking import act_for_user
from apps.core.events.consumers import RetryableError, consume_once
from apps.core.events.outbox import outbox_write
from apps.core.events.routing import Consumer, EventType
from apps.core.http.request_context import REQUEST_ID_HEADER, current_request_id
from apps.observability.metrics import record_order
from apps.orders.models import Order, Product
from apps.orders.selectors import order_with_id
from apps.orders.sharding.layout import sharded

logger = logging.getLogger(__name__)

ORDER_CREATED = "order.created"
ORDER_CONFIRMED = "order.confirmed"
ORDER_CANCELLED = "order.cancelled"
RESERVE_INVENTORY = "orders.reserve_inventory"
SEND_CONFIRMATION_EMAIL = "orders.send_confirmation_email"
NOTIFY_WAREHOUSE = "orders.notify_warehouse"

# Each consumer task is called with ``event_id`` and the event's fields, by keyword.
ORDER_EVENTS = (
    EventType(
        ORDER_CREATED,
        fields=("order_id",),
        consumers=(Consumer(RESERVE_INVENTORY, queue="orders"),),
    ),
    EventType(
        ORDER_CONFIRMED,
        fields=("order_id",),
        consumers=(
            Consumer(SEND_CONFIRMATION_EMAIL, queue="orders"),
            # The webhook waits on a remote server; its own queue keeps orders flowing.
            Consumer(NOTIFY_WAREHOUSE, queue="webhooks"),
        ),
    ),
    EventType(
        ORDER_CANCELLED,
        fields=("order_id",),
        # The warehouse heard of the order when it was confirmed; it hears of this too.
        consumers=(Consumer(NOTIFY_WAREHOUSE, queue="webhooks"),),
    ),
)


class WarehouseRejected(Exception):
    """The warehouse answered 4xx: retrying the same request cannot succeed."""


class _OutOfStock(Exception):
    def __init__(self, product_id: int) -> None:
        super().__init__(product_id)
        self.product_id = product_id


def order_reserve_inventory(*, event_id: str, order_id: int) -> Order | None:
    """Take the order's quantities from stock and confirm it, or reject it when short.

    All lines or none: a short line undoes the lines reserved before it. Products are
    updated in id order, so two orders never wait on each other's rows in a cycle.
    Return the order, or None when it does not exist or the event was already applied.
    """
    with consume_once(event_id=event_id, consumer=RESERVE_INVENTORY) as first_time:
        if not first_time:
            return None
        orders = order_with_id(order_id=order_id)
        order = orders.select_for_update().first()
        if order is None:
            logger.warning("reserve_inventory: order %s does not exist", order_id)
            return None
        if order.status == Order.Status.CONFIRMED and sharded():
            _retake_lost_stock(order)
            return order
        if order.status != Order.Status.PENDING:
            logger.info("reserve_inventory: order %s is already %s", order_id, order.status)
            return order
        # Its owner, polling the order from any client, then reads the new status.
        act_for_user(order.owner_id)
        lines = list(order.lines.filter(owner_id=order.owner_id).order_by("product_id"))
        # A savepoint undoes earlier lines when a later one is short; one line needs none.
        undo_point = transaction.atomic() if len(lines) > 1 else nullcontext()
        try:
            with undo_point:
                for line in lines:
                    taken = Product.objects.filter(
                        pk=line.product_id, stock__gte=line.quantity
                    ).update(stock=F("stock") - line.quantity)
                    if not taken:
                        raise _OutOfStock(line.product_id)
        except _OutOfStock as short:
            order.status = Order.Status.REJECTED
            order.status_reason = f"Insufficient stock for product {short.product_id}."
        else:
            order.status = Order.Status.CONFIRMED
            order.status_reason = ""
            outbox_write(
                event_type=ORDER_CONFIRMED, payload={"order_id": order.pk}, shard_key=order.owner_id
            )
        # By the pruned queryset: a save() by id alone would ask every shard.
        order.updated_at = timezone.now()
        orders.update(
            status=order.status, status_reason=order.status_reason, updated_at=order.updated_at
        )
        outcome = str(order.status)
        # Counted on commit, so a redelivery after a crash before commit counts once.
        transaction.on_commit(lambda: record_order(outcome))
    logger.info("reserve_inventory: order %s %s", order.pk, order.status)
    return order


def _retake_lost_stock(order: Order) -> None:
    """Take the stock of an order confirmed on its shard by a reservation whose mark is gone.

    The only way there: the shard committed the confirmation, then the coordinator
    lost the commit of the stock and of the mark (postgres_fdw commits the shard
    first). Taking the stock now, with the mark, makes the reservation whole.
    """
    logger.warning("reserve_inventory: order %s confirmed without its stock; taking it", order.pk)
    for line in order.lines.filter(owner_id=order.owner_id).order_by("product_id"):
        taken = Product.objects.filter(pk=line.product_id, stock__gte=line.quantity).update(
            stock=F("stock") - line.quantity
        )
        if not taken:
            logger.error(
                "reserve_inventory: order %s oversold product %s", order.pk, line.product_id
            )


def order_send_confirmation_email(*, event_id: str, order_id: int) -> bool:
    """Email the owner of a confirmed order, once; return whether an email went out.

    An SMTP failure rolls the processed mark back and is retried.
    """
    with consume_once(event_id=event_id, consumer=SEND_CONFIRMATION_EMAIL) as first_time:
        if not first_time:
            return False
        # Two columns, not two model instances: this runs once per confirmed order.
        found = (
            order_with_id(order_id=order_id)
            .filter(status=Order.Status.CONFIRMED)
            .values_list("total", "owner__email")
            .first()
        )
        if found is None or not found[1]:
            logger.info("send_confirmation_email: nothing to send for order %s", order_id)
            return False
        total, email = found
        try:
            send_mail(
                subject=f"Order {order_id} confirmed",
                message=f"Your order {order_id} ({total}) is confirmed.",
                from_email=None,
                recipient_list=[email],
            )
        except (smtplib.SMTPException, OSError) as exc:
            raise RetryableError(f"sending the email failed: {exc}") from exc
    logger.info("send_confirmation_email: sent for order %s", order_id)
    return True


def order_notify_warehouse(*, event_id: str, order_id: int) -> bool:
    """POST the confirmed order to WAREHOUSE_WEBHOOK_URL once; return whether it was sent.

    Timeouts, connection errors, 429 and 5xx raise RetryableError (retried with
    backoff); another 4xx raises WarehouseRejected, which dead-letters at once. The
    event id is sent as ``Idempotency-Key`` so the warehouse can drop the duplicate a
    crash between its 2xx and our commit would cause.
    """
    url: str = settings.WAREHOUSE_WEBHOOK_URL
    if not url:
        logger.info("notify_warehouse: WAREHOUSE_WEBHOOK_URL is not set; order %s", order_id)
        return False
    with consume_once(event_id=event_id, consumer=NOTIFY_WAREHOUSE) as first_time:
        if not first_time:
            return False
        order = order_with_id(order_id=order_id).first()
        if order is None:
            logger.warning("notify_warehouse: order %s does not exist", order_id)
            return False
        _post_json(url, _warehouse_payload(order, event_id), event_id)
    logger.info("notify_warehouse: order %s delivered", order_id)
    return True


def _warehouse_payload(order: Order, event_id: str) -> dict[str, object]:
    return {
        "event_id": event_id,
        "order_id": order.pk,
        "status": order.status,
        "total": str(order.total),
        "lines": [
            {"product_id": line.product_id, "quantity": line.quantity}
            for line in order.lines.filter(owner_id=order.owner_id)
        ],
    }


def _post_json(url: str, payload: dict[str, object], idempotency_key: str) -> None:
    if urlsplit(url).scheme not in {"http", "https"}:
        raise WarehouseRejected(f"WAREHOUSE_WEBHOOK_URL must be http(s), not {url!r}.")
    headers = {"Content-Type": "application/json", "Idempotency-Key": idempotency_key}
    request_id = current_request_id()
    if request_id:
        headers[REQUEST_ID_HEADER] = request_id
    request = urllib.request.Request(  # noqa: S310 -- scheme checked above
        url, data=json.dumps(payload).encode(), headers=headers, method="POST"
    )
    timeout: int = settings.WAREHOUSE_WEBHOOK_TIMEOUT_SECONDS
    try:
        with urllib.request.urlopen(request, timeout=timeout) as response:  # noqa: S310 -- as above
            response.read()
    except urllib.error.HTTPError as exc:
        if exc.code >= 500 or exc.code == 429:
            raise RetryableError(f"warehouse answered {exc.code}") from exc
        raise WarehouseRejected(f"warehouse answered {exc.code}") from exc
    except (urllib.error.URLError, TimeoutError, OSError) as exc:
        raise RetryableError(f"warehouse unreachable: {exc}") from exc
