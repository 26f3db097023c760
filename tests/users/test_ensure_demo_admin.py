"""``manage.py ensure_demo_admin``: a local-only superuser, refused in production mode."""

from __future__ import annotations

import io
from typing import cast

import pytest
from django.core.management import call_command
from django.core.management.base import CommandError

from apps.users.models import User
from tests.factories import PASSWORD, UserFactory

pytestmark = pytest.mark.django_db


def ensure_demo_admin() -> str:
    out = io.StringIO()
    call_command("ensure_demo_admin", stdout=out)
    return out.getvalue()


def test_ensure_demo_admin_refuses_in_production_mode(settings):
    settings.DEBUG = False

    with pytest.raises(CommandError) as raised:
        ensure_demo_admin()

    assert str(raised.value) == (
        "refusing to create a demo admin in production mode (DJANGO_DEBUG is false)."
    )
    assert User.objects.filter(username="admin").exists() is False


def test_ensure_demo_admin_creates_the_superuser_in_debug_mode(settings):
    settings.DEBUG = True

    output = ensure_demo_admin()

    assert output == "Admin: http://127.0.0.1:8000/admin/ — user admin, password admin\n"
    admin = User.objects.get(username="admin")
    assert (admin.is_superuser, admin.is_staff, admin.is_active) == (True, True, True)
    assert admin.check_password("admin") is True


def test_ensure_demo_admin_leaves_an_existing_admin_unchanged(settings):
    settings.DEBUG = True
    existing = cast(User, UserFactory(username="admin", email="admin@example.com"))

    output = ensure_demo_admin()

    assert output == (
        "Admin: http://127.0.0.1:8000/admin/ — user admin exists already; left unchanged.\n"
    )
    admin = User.objects.get(username="admin")
    assert admin.pk == existing.pk
    assert admin.check_password(PASSWORD) is True
    assert (admin.is_superuser, admin.is_staff) == (False, False)
    assert User.objects.count() == 1


def test_ensure_demo_admin_run_twice_creates_one_admin(settings):
    settings.DEBUG = True

    ensure_demo_admin()
    ensure_demo_admin()

    assert User.objects.filter(username="admin").count() == 1
