"""Behaviour of the user write services, called directly."""

from __future__ import annotations

from datetime import timedelta
from typing import Any, cast

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.utils import timezone

from apps.core.http.errors import Conflict, InvalidInput
from apps.users.models import AuthToken, User
from apps.users.services import (
    token_create,
    user_create,
    user_touch_last_active,
    user_update_profile,
)
from apps.users.tokens import token_digest
from tests.factories import PASSWORD, UserFactory

STRONG_PASSWORD = "violet-Lantern-88-orbit"

pytestmark = pytest.mark.django_db


def _user(**fields: Any) -> User:
    return cast(User, UserFactory(**fields))


def test_user_create_lowercases_the_email_domain_and_hashes_the_password():
    user = user_create(username="carol", email="Carol@EXAMPLE.Com", password=STRONG_PASSWORD)

    stored = User.objects.get(pk=user.pk)
    assert stored.username == "carol"
    assert stored.email == "Carol@example.com"
    assert stored.password != STRONG_PASSWORD
    assert stored.check_password(STRONG_PASSWORD)


def test_user_create_reports_both_taken_username_and_taken_email():
    _user(username="dave", email="dave@example.com")

    with pytest.raises(Conflict) as excinfo:
        user_create(username="dave", email="DAVE@example.com", password=STRONG_PASSWORD)

    assert excinfo.value.errors == {
        "username": ["A user with that username already exists."],
        "email": ["A user with that email already exists."],
    }
    assert User.objects.count() == 1


def test_user_create_with_weak_password_saves_nothing():
    with pytest.raises(InvalidInput) as excinfo:
        user_create(username="erin", email="erin@example.com", password="password")

    assert excinfo.value.errors == {"password": ["This password is too common."]}
    assert not User.objects.exists()


def test_user_update_profile_lets_a_user_keep_their_own_email_in_another_case():
    user = _user(username="gina", email="gina@example.com")

    user_update_profile(user=user, email="GINA@EXAMPLE.COM")

    assert User.objects.get(pk=user.pk).email == "GINA@example.com"


def test_user_update_profile_refuses_an_email_taken_by_another_user(user):
    other = _user(username="frank", email="frank@example.com")
    original_email = User.objects.get(pk=user.pk).email

    with pytest.raises(Conflict) as excinfo:
        user_update_profile(user=user, email="FRANK@example.com", display_name="Frank Too")

    assert excinfo.value.errors == {"email": ["A user with that email already exists."]}
    stored = User.objects.get(pk=user.pk)
    assert stored.email == original_email
    assert stored.display_name != "Frank Too"
    assert User.objects.get(pk=other.pk).email == "frank@example.com"


def test_user_update_profile_with_nothing_to_change_runs_no_query(user, django_assert_num_queries):
    with django_assert_num_queries(0):
        result = user_update_profile(user=user)

    assert result is user


def test_user_update_profile_writes_only_the_given_fields(user):
    with CaptureQueriesContext(connection) as captured:
        user_update_profile(user=user, display_name="Only Name")

    updates = [q["sql"] for q in captured.captured_queries if q["sql"].startswith("UPDATE")]
    assert len(updates) == 1
    assert '"display_name"' in updates[0]
    assert '"email"' not in updates[0]
    assert '"password"' not in updates[0]
    assert User.objects.get(pk=user.pk).display_name == "Only Name"


def test_token_create_returns_a_new_usable_token_each_call_and_stores_digests(user):
    first = token_create(username=user.username, password=PASSWORD)
    second = token_create(username=user.username, password=PASSWORD)

    assert first != second
    digests = set(AuthToken.objects.filter(user=user).values_list("digest", flat=True))
    assert digests == {token_digest(first), token_digest(second)}
    assert first not in digests
    assert second not in digests


def test_token_create_with_wrong_password_raises_and_stores_nothing(user):
    with pytest.raises(InvalidInput) as excinfo:
        token_create(username=user.username, password="not-the-password")

    assert excinfo.value.detail == "Unable to log in with the provided credentials."
    assert not AuthToken.objects.exists()


def test_user_touch_last_active_writes_once_within_the_interval(user, settings):
    settings.USER_LAST_ACTIVE_INTERVAL_SECONDS = 300

    assert user_touch_last_active(user_id=user.pk) is True
    first = User.objects.get(pk=user.pk).last_active
    assert first is not None

    assert user_touch_last_active(user_id=user.pk) is False
    assert User.objects.get(pk=user.pk).last_active == first


def test_user_touch_last_active_refreshes_a_value_older_than_the_interval(user, settings):
    settings.USER_LAST_ACTIVE_INTERVAL_SECONDS = 300
    stale = timezone.now() - timedelta(seconds=301)
    User.objects.filter(pk=user.pk).update(last_active=stale)

    assert user_touch_last_active(user_id=user.pk) is True

    refreshed = User.objects.get(pk=user.pk).last_active
    assert refreshed is not None
    assert refreshed > stale


def test_user_touch_last_active_for_unknown_user_writes_nothing(db):
    assert user_touch_last_active(user_id=987654321) is False
