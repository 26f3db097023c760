"""Bulk demo and load-test data: users, products, and orders with their lines.

Everything is inserted with ``bulk_create`` in batches, so the number of queries grows
with the number of batches, not with the number of rows. Every demo user shares one
password hash: hashing is deliberately slow, and one hash is enough for accounts that
all log in with ``DEMO_PASSWORD``. Orders are placed as the API places them: pending,
each with its ``order.created`` event in the outbox, so the consumers confirm or reject
them (in-process right after the commit when there is no broker). A few products have
almost no stock, so some orders are rejected.
"""

from __future__ import annotations

import random
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from datetime import timedelta
from decimal import Decimal

from django.contrib.auth.hashers import make_password
from django.db import models, transaction
from django.db.models import Max
from django.db.models.functions import Cast, Substr
from django.utils import timezone

from apps.core.events.outbox import outbox_write_many
from apps.core.http.errors import InvalidInput
from apps.orders.events import ORDER_CREATED
from apps.orders.models import Order, OrderLine, Product
from apps.users.models import User

# Public by design: the demo accounts exist for local use and load tests only.
DEMO_PASSWORD = "demo-password"  # noqa: S105 -- a documented demo credential, not a secret
USERNAME_PREFIX = "demo"
SKU_PREFIX = "DEMO-"
IDEMPOTENCY_KEY_PREFIX = "seed-demo-"
MAX_LINES_PER_ORDER = 5
MAX_DEMO_QUANTITY = 5
ACTIVITY_WINDOW = timedelta(days=30)
DEFAULT_BATCH_SIZE = 1000
# One product in this many has almost no stock (0-3), so some demo orders are rejected.
SCARCE_PRODUCT_ONE_IN = 8
SCARCE_STOCK_MAX = 3
# Orders seeded onto existing rows pick their owners and products from at most this many.
EXISTING_POOL_LIMIT = 10_000
# At most 18 digits, so that the number always fits the BIGINT it is cast to.
_USERNAME_PATTERN = rf"^{USERNAME_PREFIX}[0-9]{{1,18}}$"
_SKU_PATTERN = rf"^{SKU_PREFIX}[0-9]{{1,18}}$"

_FIRST_NAMES = (
    "Ada", "Alan", "Barbara", "Claude", "Donald", "Edsger", "Frances", "Grace", "Hedy",
    "John", "Katherine", "Ken", "Leslie", "Margaret", "Niklaus", "Radia", "Tim", "Vint",
)  # fmt: skip
_LAST_NAMES = (
    "Allen", "Berners-Lee", "Cerf", "Dijkstra", "Hamilton", "Hopper", "Johnson", "Kay",
    "Knuth", "Lamport", "Liskov", "Lovelace", "Perlman", "Ritchie", "Shannon", "Turing",
)  # fmt: skip
_ADJECTIVES = (
    "Compact", "Durable", "Ergonomic", "Heavy-duty", "Lightweight", "Portable", "Premium",
    "Recycled", "Rugged", "Sleek", "Smart", "Classic",
)  # fmt: skip
_MATERIALS = (
    "Aluminium", "Bamboo", "Canvas", "Ceramic", "Cotton", "Glass", "Leather", "Oak",
    "Steel", "Wool",
)  # fmt: skip
_NOUNS = (
    "Backpack", "Bottle", "Chair", "Desk Lamp", "Headphones", "Keyboard", "Kettle", "Mug",
    "Notebook", "Speaker", "Table", "Watch",
)  # fmt: skip


@dataclass(frozen=True)
class SeedCounts:
    """How many rows of each kind one seeding run inserted."""

    users: int
    products: int
    orders: int
    lines: int


def demo_data_seed(
    *,
    users: int,
    products: int,
    orders: int,
    seed: int | None = None,
    batch_size: int = DEFAULT_BATCH_SIZE,
    progress: Callable[[int], object] | None = None,
) -> SeedCounts:
    """Insert demo users, products and orders (with their events) in batches; return the counts.

    Usernames and SKUs are numbered after the highest demo number already stored, so a
    rerun adds rows instead of colliding. Orders belong to this run's users and products,
    or to existing demo users and existing products when this run creates none. The same
    ``seed`` draws the same names, prices, stock and order contents. ``progress`` is
    called with the number of rows of each batch once it is stored.
    """
    if min(users, products, orders) < 0:
        raise InvalidInput("Counts must be zero or more.")
    if batch_size < 1:
        raise InvalidInput("The batch size must be at least 1.")
    rng = random.Random(seed)  # noqa: S311 -- demo data, not security
    report = progress or _ignore

    existing_owners: list[int] = []
    existing_catalogue: list[tuple[int, Decimal]] = []
    if orders:
        if not users:
            existing_owners = _existing_demo_user_ids()
        if not products:
            existing_catalogue = _existing_catalogue()
        if not (users or existing_owners) or not (products or existing_catalogue):
            raise InvalidInput(
                "Orders need demo users and products: create some in the same run "
                "(--users, --products) or seed them first."
            )

    owners = _users_create(count=users, rng=rng, batch_size=batch_size, report=report)
    catalogue = _products_create(count=products, rng=rng, batch_size=batch_size, report=report)
    lines = _orders_create(
        count=orders,
        owners=owners or existing_owners,
        catalogue=catalogue or existing_catalogue,
        rng=rng,
        batch_size=batch_size,
        report=report,
    )
    return SeedCounts(users=users, products=products, orders=orders, lines=lines)


def _ignore(rows: int) -> None:
    return None


def _batches(count: int, batch_size: int) -> Iterator[int]:
    """Yield the sizes of the batches that make up ``count`` rows."""
    for start in range(0, count, batch_size):
        yield min(batch_size, count - start)


def _highest_number(model: type[models.Model], field: str, prefix: str, pattern: str) -> int:
    """Return the highest N of ``<prefix>N`` values stored in ``field``, or 0."""
    number = Cast(Substr(field, len(prefix) + 1), models.BigIntegerField())
    found = model._default_manager.filter(**{f"{field}__regex": pattern}).aggregate(
        highest=Max(number)
    )["highest"]
    return int(found or 0)


def _users_create(
    *, count: int, rng: random.Random, batch_size: int, report: Callable[[int], object]
) -> list[int]:
    if not count:
        return []
    password_hash = make_password(DEMO_PASSWORD)
    first = _highest_number(User, "username", USERNAME_PREFIX, _USERNAME_PATTERN) + 1
    now = timezone.now()
    window = int(ACTIVITY_WINDOW.total_seconds())
    ids: list[int] = []
    number = first
    for size in _batches(count, batch_size):
        batch = []
        for _ in range(size):
            username = f"{USERNAME_PREFIX}{number}"
            last_active = now - timedelta(seconds=rng.randint(0, window))
            batch.append(
                User(
                    username=username,
                    email=f"{username}@example.com",
                    password=password_hash,
                    display_name=f"{rng.choice(_FIRST_NAMES)} {rng.choice(_LAST_NAMES)}",
                    last_active=last_active,
                    date_joined=last_active - timedelta(days=rng.randint(0, 365)),
                )
            )
            number += 1
        User.objects.bulk_create(batch, batch_size=batch_size)
        ids.extend(user.pk for user in batch)
        report(size)
    return ids


def _products_create(
    *, count: int, rng: random.Random, batch_size: int, report: Callable[[int], object]
) -> list[tuple[int, Decimal]]:
    if not count:
        return []
    number = _highest_number(Product, "sku", SKU_PREFIX, _SKU_PATTERN) + 1
    catalogue: list[tuple[int, Decimal]] = []
    for size in _batches(count, batch_size):
        batch = []
        for _ in range(size):
            name = f"{rng.choice(_ADJECTIVES)} {rng.choice(_MATERIALS)} {rng.choice(_NOUNS)}"
            batch.append(
                Product(
                    sku=f"{SKU_PREFIX}{number:06d}",
                    name=name,
                    price=Decimal(rng.randint(199, 49_999)).scaleb(-2),
                    stock=(
                        rng.randint(0, SCARCE_STOCK_MAX)
                        if rng.randrange(SCARCE_PRODUCT_ONE_IN) == 0
                        else rng.randint(20, 500)
                    ),
                )
            )
            number += 1
        Product.objects.bulk_create(batch, batch_size=batch_size)
        catalogue.extend((product.pk, product.price) for product in batch)
        report(size)
    return catalogue


def _orders_create(
    *,
    count: int,
    owners: Sequence[int],
    catalogue: Sequence[tuple[int, Decimal]],
    rng: random.Random,
    batch_size: int,
    report: Callable[[int], object],
) -> int:
    """Insert ``count`` pending orders, their lines and events; return the number of lines."""
    if not count:
        return 0
    # Keys only need to be unique per owner; numbering them after the highest order id
    # keeps them unique across reruns that reuse existing owners.
    key_number = (Order.objects.aggregate(highest=Max("id"))["highest"] or 0) + 1
    line_count = 0
    for size in _batches(count, batch_size):
        orders: list[Order] = []
        lines_of: list[list[OrderLine]] = []
        for _ in range(size):
            picked = rng.sample(
                catalogue, k=min(rng.randint(1, MAX_LINES_PER_ORDER), len(catalogue))
            )
            lines = [
                OrderLine(
                    product_id=product_id,
                    quantity=rng.randint(1, MAX_DEMO_QUANTITY),
                    unit_price=price,
                )
                for product_id, price in picked
            ]
            # The same arithmetic as services.order_create: catalogue price × quantity.
            total = sum((line.unit_price * line.quantity for line in lines), Decimal("0.00"))
            orders.append(
                Order(
                    owner_id=rng.choice(owners),
                    status=Order.Status.PENDING,
                    total=total,
                    idempotency_key=f"{IDEMPOTENCY_KEY_PREFIX}{key_number}",
                )
            )
            lines_of.append(lines)
            key_number += 1
        with transaction.atomic():
            Order.objects.bulk_create(orders, batch_size=batch_size)
            flat: list[OrderLine] = []
            for order, lines in zip(orders, lines_of, strict=True):
                for line in lines:
                    line.order = order
                    line.owner_id = order.owner_id
                flat.extend(lines)
            OrderLine.objects.bulk_create(flat, batch_size=batch_size)
            # The same event order_create writes, published once the batch commits.
            outbox_write_many(
                event_type=ORDER_CREATED,
                payloads=[{"order_id": order.pk} for order in orders],
                shard_keys=[order.owner_id for order in orders],
            )
        line_count += len(flat)
        report(size)
    return line_count


def _existing_demo_user_ids() -> list[int]:
    demo_users = User.objects.filter(username__regex=_USERNAME_PATTERN)
    return list(demo_users.order_by("-id").values_list("id", flat=True)[:EXISTING_POOL_LIMIT])


def _existing_catalogue() -> list[tuple[int, Decimal]]:
    return list(Product.objects.order_by("id").values_list("id", "price")[:EXISTING_POOL_LIMIT])
