"""Show how orders are sharded: ``manage.py shards``."""

from __future__ import annotations

import json
from collections import defaultdict
from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser

from apps.orders.sharding.layout import sharded
from apps.orders.sharding.report import misplaced_rows, partition_placements, shard_row_counts


class Command(BaseCommand):
    help = (
        "Show where each logical partition of the sharded tables lives, each shard's row "
        "counts (asked of the shard), and audit for rows outside their partition; exit 1 "
        "when the audit finds any."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--json", action="store_true", help="print one JSON document")

    def handle(self, *args: Any, **options: Any) -> None:
        if not sharded():
            raise CommandError("Orders are not sharded: DATABASE_SHARD_URLS is not set.")
        placements = partition_placements()
        counts = shard_row_counts()
        misplaced = misplaced_rows()
        if options["json"]:
            document = {
                "partitions": [
                    {"table": p.table, "remainder": p.remainder, "server": p.server}
                    for p in placements
                ],
                "rows": counts,
                "misplaced": misplaced,
            }
            self.stdout.write(json.dumps(document, sort_keys=True))
        else:
            self._print(placements, counts, misplaced)
        if any(misplaced.values()):
            raise CommandError(f"Misplaced rows found: {misplaced}")

    def _print(
        self, placements: list[Any], counts: dict[str, dict[str, int]], misplaced: dict[str, int]
    ) -> None:
        by_server: dict[str, set[int]] = defaultdict(set)
        for placement in placements:
            by_server[placement.server].add(placement.remainder)
        self.stdout.write("Partitions (HASH remainder -> server):")
        for server, remainders in sorted(by_server.items()):
            self.stdout.write(f"  {server}: {', '.join(str(r) for r in sorted(remainders))}")
        self.stdout.write("Rows per shard:")
        for server, tables in counts.items():
            listed = ", ".join(f"{table}={count}" for table, count in tables.items())
            self.stdout.write(f"  {server}: {listed}")
        self.stdout.write("Misplaced rows:")
        for table, count in misplaced.items():
            self.stdout.write(f"  {table}: {count}")
