"""Create the local demo superuser: ``manage.py ensure_demo_admin``."""

from __future__ import annotations

from typing import Any

from django.conf import settings
from django.core.management.base import BaseCommand, CommandError
from django.db import IntegrityError, transaction

from apps.users.models import User

USERNAME = "admin"
PASSWORD = "admin"  # noqa: S105 -- the documented local-only demo credential
ADMIN_URL = "http://127.0.0.1:8000/admin/"


class Command(BaseCommand):
    help = (
        "In DEBUG mode only, create the superuser admin with password admin unless a user "
        "admin exists; refuse in production mode."
    )

    def handle(self, *args: Any, **options: Any) -> None:
        if not settings.DEBUG:
            raise CommandError(
                "refusing to create a demo admin in production mode (DJANGO_DEBUG is false)."
            )
        try:
            # Creating and catching the conflict, rather than checking first, keeps two
            # concurrent runs from both trying to create the user.
            with transaction.atomic():
                User.objects.create_superuser(username=USERNAME, email="", password=PASSWORD)
        except IntegrityError:
            self.stdout.write(
                f"Admin: {ADMIN_URL} — user {USERNAME} exists already; left unchanged."
            )
            return
        self.stdout.write(f"Admin: {ADMIN_URL} — user {USERNAME}, password {PASSWORD}")
