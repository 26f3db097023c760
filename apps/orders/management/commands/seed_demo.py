"""Load demo and load-test data in bulk: ``manage.py seed_demo``."""

from __future__ import annotations

import time
from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser, OutputWrapper
from tqdm import tqdm

from apps.core.http.errors import ApplicationError
from apps.orders.demo_data import DEFAULT_BATCH_SIZE, DEMO_PASSWORD, demo_data_seed
from apps.orders.selectors import product_list

COUNT_OPTIONS = ("users", "products", "orders")
# Far beyond any demo or load test; a typo's extra digits are refused, not run for days.
MAX_COUNT = 10_000_000


class _TerminalStream:
    """Let tqdm redraw its bar in place: OutputWrapper would end every write with a newline."""

    def __init__(self, out: OutputWrapper) -> None:
        self._out = out

    def write(self, text: str) -> None:
        self._out.write(text, ending="")

    def flush(self) -> None:
        self._out.flush()


class Command(BaseCommand):
    help = (
        "Load demo and load-test data in bulk: users (password "
        f"{DEMO_PASSWORD!r}), products, and orders of 1-5 lines, placed through the "
        "outbox so that they are confirmed or rejected as API orders are."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--users", type=int, default=100, help="users to add (default 100)")
        parser.add_argument(
            "--products", type=int, default=100, help="products to add (default 100)"
        )
        parser.add_argument("--orders", type=int, default=500, help="orders to add (default 500)")
        parser.add_argument(
            "--seed", type=int, default=None, help="random seed, for the same data on every run"
        )
        parser.add_argument(
            "--batch-size",
            type=int,
            default=DEFAULT_BATCH_SIZE,
            help=f"rows per INSERT (default {DEFAULT_BATCH_SIZE})",
        )
        parser.add_argument(
            "--if-empty",
            action="store_true",
            help="do nothing when the catalogue already has a product",
        )

    def handle(self, *args: Any, **options: Any) -> None:
        counts = {name: int(options[name]) for name in COUNT_OPTIONS}
        for name, value in counts.items():
            if value < 0:
                raise CommandError(f"--{name} must be zero or more, got {value}.")
            if value > MAX_COUNT:
                raise CommandError(f"--{name} must be at most {MAX_COUNT:,}, got {value:,}.")
        batch_size = int(options["batch_size"])
        if batch_size < 1:
            raise CommandError(f"--batch-size must be at least 1, got {batch_size}.")
        if options["if_empty"] and product_list().exists():
            self.stdout.write(
                "Demo data not loaded: the database already has products (--if-empty)."
            )
            return

        started = time.perf_counter()
        with tqdm(
            total=sum(counts.values()),
            unit="rows",
            file=_TerminalStream(self.stdout),
            disable=not self.stdout.isatty(),
        ) as bar:
            try:
                seeded = demo_data_seed(
                    **counts, seed=options["seed"], batch_size=batch_size, progress=bar.update
                )
            except ApplicationError as exc:
                raise CommandError(exc.detail) from None
        elapsed = time.perf_counter() - started
        self.stdout.write(
            f"Seeded {seeded.users} users, {seeded.products} products, {seeded.orders} orders "
            f"({seeded.lines} lines) in {elapsed:.2f} s."
        )
        if seeded.users:
            self.stdout.write(f"Demo users log in with the password {DEMO_PASSWORD!r}.")
