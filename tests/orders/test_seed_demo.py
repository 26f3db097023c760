"""``manage.py seed_demo``: bulk demo data with exact counts and a fixed query budget."""

from __future__ import annotations

import io
import re
from collections import Counter
from datetime import timedelta
from decimal import Decimal

import pytest
from django.core.management import call_command
from django.core.management.base import CommandError
from django.db.models import Count, F, Max, Min, Sum
from django.utils import timezone

from apps.core.events.models import OutboxEvent
from apps.orders.demo_data import DEMO_PASSWORD, SCARCE_STOCK_MAX
from apps.orders.events import ORDER_CREATED
from apps.orders.models import Order, OrderLine, Product
from apps.users.models import User
from apps.users.services import token_create
from tests.factories import UserFactory

pytestmark = pytest.mark.django_db

SUMMARY = re.compile(
    r"^Seeded (\d+) users, (\d+) products, (\d+) orders \((\d+) lines\) in \d+\.\d\d s\.$"
)
# Users: highest demo number + 1 INSERT; products: the same; orders: highest id + one
# INSERT of orders + one of lines + one of their outbox events + the savepoint pair of
# the batch's transaction.
QUERY_BUDGET = 10


def seed(*args: str) -> list[str]:
    """Run seed_demo with ``args`` and return its output lines."""
    out = io.StringIO()
    call_command("seed_demo", *args, stdout=out)
    return out.getvalue().splitlines()


def summary_counts(lines: list[str]) -> tuple[int, ...]:
    match = SUMMARY.match(lines[0])
    assert match is not None, lines
    return tuple(int(group) for group in match.groups())


def test_seed_demo_inserts_exactly_the_requested_counts():
    lines = seed("--users", "7", "--products", "9", "--orders", "11", "--seed", "1")

    assert User.objects.count() == 7
    assert Product.objects.count() == 9
    assert Order.objects.count() == 11
    assert summary_counts(lines) == (7, 9, 11, OrderLine.objects.count())
    assert lines[1:] == ["Demo users log in with the password 'demo-password'."]


def test_seed_demo_orders_have_one_to_five_lines_owned_by_demo_users_and_pending():
    seed("--users", "10", "--products", "20", "--orders", "60", "--seed", "2")

    per_order = Order.objects.annotate(n=Count("lines")).aggregate(low=Min("n"), high=Max("n"))
    assert per_order == {"low": 1, "high": 5}
    assert set(Order.objects.values_list("status", flat=True)) == {"pending"}
    demo_ids = set(User.objects.values_list("id", flat=True))
    assert set(Order.objects.values_list("owner_id", flat=True)) <= demo_ids
    keys = list(Order.objects.values_list("owner_id", "idempotency_key"))
    assert len(set(keys)) == 60


def test_seed_demo_writes_one_order_created_event_per_order():
    seed("--users", "3", "--products", "5", "--orders", "12", "--seed", "2")

    events = OutboxEvent.objects.filter(event_type=ORDER_CREATED, sent_at__isnull=True)
    assert sorted(e.payload["order_id"] for e in events) == sorted(
        Order.objects.values_list("id", flat=True)
    )
    assert OutboxEvent.objects.count() == 12


@pytest.mark.django_db(transaction=True)
def test_seeded_orders_are_confirmed_or_rejected_in_process_without_a_broker(eager_tasks):
    seed("--users", "10", "--products", "40", "--orders", "60", "--seed", "11")

    statuses = Counter(Order.objects.values_list("status", flat=True))
    assert set(statuses) == {"confirmed", "rejected"}
    assert statuses["confirmed"] + statuses["rejected"] == 60
    assert not OutboxEvent.objects.filter(event_type=ORDER_CREATED, sent_at__isnull=True).exists()
    rejected = Order.objects.filter(status="rejected").first()
    assert rejected is not None
    assert rejected.status_reason.startswith("Insufficient stock for product ")


def test_seed_demo_order_totals_equal_the_sum_of_their_lines_at_catalogue_prices():
    seed("--users", "5", "--products", "15", "--orders", "40", "--seed", "3")

    orders = Order.objects.annotate(lines_total=Sum(F("lines__unit_price") * F("lines__quantity")))
    mismatched = [(o.pk, o.total, o.lines_total) for o in orders if o.total != o.lines_total]
    assert mismatched == []
    assert OrderLine.objects.exclude(unit_price=F("product__price")).count() == 0
    assert Order.objects.filter(total__lte=Decimal("0.00")).count() == 0


def test_seed_demo_products_have_unique_skus_positive_prices_and_stock_some_scarce():
    seed("--users", "0", "--products", "30", "--orders", "0", "--seed", "4")

    products = list(Product.objects.order_by("id"))
    assert [p.sku for p in products] == [f"DEMO-{n:06d}" for n in range(1, 31)]
    assert all(Decimal("1.99") <= p.price <= Decimal("499.99") for p in products)
    assert all(p.price == p.price.quantize(Decimal("0.01")) for p in products)
    scarce = [p.sku for p in products if p.stock <= SCARCE_STOCK_MAX]
    # About one in eight, drawn from the seed: enough for demo orders to be rejected.
    assert 1 <= len(scarce) <= 10, scarce
    assert all(20 <= p.stock <= 500 for p in products if p.sku not in scarce)


def test_seed_demo_users_share_one_hash_of_the_demo_password_and_can_log_in():
    seed("--users", "4", "--products", "0", "--orders", "0", "--seed", "5")

    users = list(User.objects.order_by("id"))
    assert [u.username for u in users] == ["demo1", "demo2", "demo3", "demo4"]
    assert [u.email for u in users] == [f"demo{n}@example.com" for n in range(1, 5)]
    assert len({u.password for u in users}) == 1
    assert token_create(username="demo3", password=DEMO_PASSWORD)


def test_seed_demo_spreads_last_active_over_the_past_thirty_days():
    before = timezone.now()
    seed("--users", "50", "--products", "0", "--orders", "0", "--seed", "6")

    active = [m for m in User.objects.values_list("last_active", flat=True) if m is not None]
    assert len(active) == 50
    assert all(before - timedelta(days=30) <= moment <= timezone.now() for moment in active)
    # Distinct moments on many days make "most recently active" a real ranking.
    assert len(set(active)) == 50
    assert len({moment.date() for moment in active}) > 5


def test_seed_demo_query_count_does_not_grow_with_the_number_of_orders(
    django_assert_max_num_queries,
):
    with django_assert_max_num_queries(QUERY_BUDGET) as small:
        seed("--users", "20", "--products", "30", "--orders", "10", "--seed", "7")
    with django_assert_max_num_queries(QUERY_BUDGET) as large:
        seed("--users", "20", "--products", "30", "--orders", "200", "--seed", "7")

    assert Order.objects.count() == 210
    assert len(small.captured_queries) == len(large.captured_queries)


def test_seed_demo_rerun_adds_rows_without_unique_violations():
    seed("--users", "6", "--products", "8", "--orders", "10", "--seed", "8")
    seed("--users", "6", "--products", "8", "--orders", "10", "--seed", "8")

    assert User.objects.count() == 12
    assert Product.objects.count() == 16
    assert Order.objects.count() == 20
    assert User.objects.order_by("-id").values_list("username", flat=True)[0] == "demo12"
    assert Product.objects.order_by("-id").values_list("sku", flat=True)[0] == "DEMO-000016"


def test_seed_demo_numbers_new_demo_users_after_the_highest_existing_one():
    UserFactory(username="demo41", email="someone@example.com")
    UserFactory(username="demonstrator", email="other@example.com")

    seed("--users", "2", "--products", "0", "--orders", "0")

    assert list(User.objects.order_by("id").values_list("username", flat=True)) == [
        "demo41",
        "demonstrator",
        "demo42",
        "demo43",
    ]


def test_seed_demo_with_the_same_seed_draws_the_same_data():
    seed("--users", "5", "--products", "10", "--orders", "15", "--seed", "9")
    seed("--users", "5", "--products", "10", "--orders", "15", "--seed", "9")
    seed("--users", "5", "--products", "10", "--orders", "15", "--seed", "10")

    products = list(Product.objects.order_by("id").values_list("name", "price", "stock"))
    totals = list(Order.objects.order_by("id").values_list("total", flat=True))
    names = list(User.objects.order_by("id").values_list("display_name", flat=True))
    assert products[:10] == products[10:20]
    assert totals[:15] == totals[15:30]
    assert names[:5] == names[5:10]
    assert (products[20:], totals[30:]) != (products[:10], totals[:15])


def test_seed_demo_orders_alone_go_to_existing_demo_users_and_products():
    seed("--users", "3", "--products", "4", "--orders", "0")

    lines = seed("--users", "0", "--products", "0", "--orders", "5")

    assert summary_counts(lines)[:3] == (0, 0, 5)
    assert lines[1:] == []
    demo_ids = set(User.objects.values_list("id", flat=True))
    assert set(Order.objects.values_list("owner_id", flat=True)) <= demo_ids
    assert Product.objects.count() == 4


def test_seed_demo_refuses_orders_when_there_is_nobody_to_own_them(product):
    with pytest.raises(CommandError) as raised:
        seed("--users", "0", "--products", "0", "--orders", "5")

    assert str(raised.value) == (
        "Orders need demo users and products: create some in the same run "
        "(--users, --products) or seed them first."
    )
    assert Order.objects.count() == 0


def test_seed_demo_if_empty_does_nothing_when_a_product_exists(product):
    lines = seed("--users", "3", "--products", "5", "--orders", "4", "--if-empty")

    assert lines == ["Demo data not loaded: the database already has products (--if-empty)."]
    assert list(Product.objects.values_list("sku", flat=True)) == [product.sku]
    assert User.objects.count() == 0
    assert Order.objects.count() == 0


def test_seed_demo_if_empty_seeds_an_empty_database():
    lines = seed("--users", "3", "--products", "5", "--orders", "4", "--if-empty")

    assert summary_counts(lines)[:3] == (3, 5, 4)
    assert (User.objects.count(), Product.objects.count(), Order.objects.count()) == (3, 5, 4)


@pytest.mark.parametrize("option", ["--users", "--products", "--orders"])
def test_seed_demo_refuses_a_negative_count(option):
    with pytest.raises(CommandError) as raised:
        seed(option, "-1")

    assert str(raised.value) == f"{option} must be zero or more, got -1."
    assert (User.objects.count(), Product.objects.count(), Order.objects.count()) == (0, 0, 0)


@pytest.mark.parametrize("option", ["--users", "--products", "--orders"])
def test_seed_demo_refuses_a_count_no_demo_needs(option):
    with pytest.raises(CommandError) as raised:
        seed(option, "99999999999999999999")

    assert str(raised.value) == (
        f"{option} must be at most 10,000,000, got 99,999,999,999,999,999,999."
    )
    assert (User.objects.count(), Product.objects.count(), Order.objects.count()) == (0, 0, 0)


def test_seed_demo_refuses_a_batch_size_below_one():
    with pytest.raises(CommandError) as raised:
        seed("--batch-size", "0")

    assert str(raised.value) == "--batch-size must be at least 1, got 0."
    assert Product.objects.count() == 0


def test_seed_demo_small_batches_insert_the_same_rows():
    lines = seed("--users", "7", "--products", "5", "--orders", "9", "--batch-size", "2")

    assert summary_counts(lines) == (7, 5, 9, OrderLine.objects.count())
    assert (User.objects.count(), Product.objects.count(), Order.objects.count()) == (7, 5, 9)


class Terminal(io.StringIO):
    def isatty(self) -> bool:
        return True


def test_seed_demo_draws_a_progress_bar_only_on_a_terminal():
    terminal = Terminal()
    call_command("seed_demo", "--users", "2", "--products", "2", "--orders", "2", stdout=terminal)
    piped = seed("--users", "2", "--products", "2", "--orders", "2")

    assert "6/6 [" in terminal.getvalue()
    assert "\r" in terminal.getvalue()
    assert len(piped) == 2
    assert "rows/s" not in "\n".join(piped)
