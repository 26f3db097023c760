"""Print the scale decision matrix's row for a number of users: ``manage.py scale_advice``."""

from __future__ import annotations

from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser

from apps.core.http.errors import ApplicationError
from apps.observability.capacity import scale_advice


class Command(BaseCommand):
    help = (
        "The architecture row for N users (bands 1K, 10K, 100K, 1M; a boundary belongs to "
        "the band it opens) and the parts of highscale to switch on."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--users", type=int, required=True, help="number of users")

    def handle(self, *args: Any, **options: Any) -> None:
        try:
            row = scale_advice(options["users"])
        except ApplicationError as exc:
            raise CommandError(exc.detail) from None
        self.stdout.write(f"Users: {options['users']:,} ({row.label})")
        self.stdout.write(f"Architecture: {row.architecture}")
        self.stdout.write(f"Database: {row.database}")
        self.stdout.write(f"Caching: {row.caching}")
        self.stdout.write(f"Notes: {row.notes}")
        self.stdout.write("Switch on in highscale:")
        for part in row.highscale:
            self.stdout.write(f"  - {part}")
