"""Replay (or discard) dead letters from a shell, like the admin's actions."""

from __future__ import annotations

from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser

from apps.core.events.dead_letters import (
    dead_letter_discard,
    dead_letter_replay,
    dead_letters_drain,
)
from apps.core.events.models import DeadLetter
from apps.core.http.errors import ApplicationError


class Command(BaseCommand):
    help = (
        "Replay pending dead letters (all, or those given by --id or --task); "
        "--discard marks them discarded instead; --list only shows them."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--id", type=int, action="append", dest="ids", default=[])
        parser.add_argument("--task", help="only dead letters of this task name")
        parser.add_argument("--discard", action="store_true", help="discard instead of replay")
        parser.add_argument("--list", action="store_true", help="list and change nothing")
        parser.add_argument(
            "--no-drain",
            action="store_true",
            help="do not first collect RabbitMQ's dead-letter queue into the table",
        )

    def handle(self, *args: Any, **options: Any) -> None:
        if not options["no_drain"] and not options["list"]:
            try:
                moved = dead_letters_drain()
            except Exception as exc:  # noqa: BLE001 -- a broker that is down must not block replays
                self.stderr.write(f"could not read the dead-letter queue: {exc}")
            else:
                if moved:
                    self.stdout.write(f"collected {moved} message(s) from the dead-letter queue")
        letters = DeadLetter.objects.order_by("id")
        # Named letters are all tried, so one already handled is reported, not skipped silently.
        if options["ids"]:
            letters = letters.filter(pk__in=options["ids"])
        else:
            letters = letters.filter(status=DeadLetter.Status.PENDING)
        if options["task"]:
            letters = letters.filter(task=options["task"])
        if options["list"]:
            for letter in letters:
                self.stdout.write(
                    f"{letter.pk}\t{letter.task or '-'}\t{letter.attempts}\t{letter.reason}"
                )
            return
        action = dead_letter_discard if options["discard"] else dead_letter_replay
        verb = "discarded" if options["discard"] else "replayed"
        done, failed = 0, 0
        for pk in letters.values_list("pk", flat=True):
            try:
                action(dead_letter_id=pk)
            except ApplicationError as exc:
                failed += 1
                self.stderr.write(f"dead letter {pk}: {exc.detail}")
            else:
                done += 1
        self.stdout.write(f"{done} dead letter(s) {verb}, {failed} skipped")
        if failed and not done:
            raise CommandError("no dead letter could be handled")
