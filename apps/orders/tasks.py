"""Celery tasks consuming order events; each takes ids and calls one service."""

from __future__ import annotations

from celery import shared_task

from apps.core.events.consumers import ReliableTask
from apps.orders.events import (
    NOTIFY_WAREHOUSE,
    RESERVE_INVENTORY,
    SEND_CONFIRMATION_EMAIL,
    order_notify_warehouse,
    order_reserve_inventory,
    order_send_confirmation_email,
)


@shared_task(base=ReliableTask, name=RESERVE_INVENTORY, ignore_result=True)
def reserve_inventory(event_id: str, order_id: int) -> None:
    """Reserve the order's stock; confirm or reject it."""
    order_reserve_inventory(event_id=event_id, order_id=order_id)


@shared_task(base=ReliableTask, name=SEND_CONFIRMATION_EMAIL, ignore_result=True)
def send_confirmation_email(event_id: str, order_id: int) -> None:
    """Email the owner of a confirmed order."""
    order_send_confirmation_email(event_id=event_id, order_id=order_id)


@shared_task(base=ReliableTask, name=NOTIFY_WAREHOUSE, ignore_result=True)
def notify_warehouse(event_id: str, order_id: int) -> None:
    """POST a confirmed order to the warehouse webhook."""
    order_notify_warehouse(event_id=event_id, order_id=order_id)
