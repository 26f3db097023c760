"""Time the app's order placement on ``DATABASE_URL``: ``python -m loadtests.bench.ha_orders N``.

Prints a JSON list of N latencies in seconds, one ``order_create`` each (one user, one
product, a fresh idempotency key per order), after a short warm-up. The caller points
``CELERY_BROKER_URL`` at a port nothing listens on: publishing is the relay thread's
work after the commit, so what is timed is the order's own transaction.
"""

from __future__ import annotations

import json
import sys
import time
import uuid
from decimal import Decimal

import django

WARM_UP = 20


def main(count: int) -> list[float]:
    """Place ``WARM_UP`` + ``count`` orders; return the last ``count`` latencies."""
    django.setup()
    from apps.orders.models import Product
    from apps.orders.services import OrderItem, order_create
    from apps.users.models import User

    tag = uuid.uuid4().hex[:10]
    user = User.objects.create_user(username=f"bench{tag}", email=f"{tag}@example.com")
    product = Product.objects.create(
        sku=f"bench-{tag}", name="bench", price=Decimal("1.00"), stock=10**9
    )
    items = [OrderItem(product_id=product.pk, quantity=1)]
    latencies = []
    for number in range(WARM_UP + count):
        started = time.perf_counter()
        order_create(owner_id=user.pk, items=items, idempotency_key=uuid.uuid4().hex)
        if number >= WARM_UP:
            latencies.append(time.perf_counter() - started)
    return latencies


if __name__ == "__main__":
    print(json.dumps(main(int(sys.argv[1]))))
