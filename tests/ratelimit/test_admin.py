"""Per-user overrides, edited in the admin, take effect without a restart."""

from __future__ import annotations

from typing import cast

import pytest
from django.core.exceptions import ValidationError
from rest_framework.test import APIClient

from apps.ratelimit.models import RateLimitOverride
from apps.ratelimit.selectors import override_get
from apps.users.models import User
from tests.factories import UserFactory

pytestmark = pytest.mark.django_db
PATH = "/api/v1/products"


@pytest.fixture
def staff_client(client):
    client.force_login(UserFactory(username="root", is_staff=True, is_superuser=True))
    return client


def test_an_override_added_in_the_admin_raises_one_users_quota_at_once(
    staff_client, user, token, set_policy
):
    set_policy("api", limit=2, window=60, algorithm="sliding_window", header_name="default")
    partner = APIClient()
    partner.credentials(HTTP_AUTHORIZATION=f"Token {token}")
    assert [partner.get(PATH).status_code for _ in range(3)] == [200, 200, 429]

    response = staff_client.post(
        "/admin/ratelimit/ratelimitoverride/add/",
        {"user": user.pk, "policy": "api", "limit": 5, "window": 60, "note": "partner"},
    )

    assert response.status_code == 302
    statuses = [partner.get(PATH).status_code for _ in range(4)]
    assert statuses == [200, 200, 200, 429]
    other = cast(User, UserFactory())
    assert override_get(user_id=other.pk, policy="api") is None


def test_an_edit_reaches_other_processes_after_the_snapshot_ages(settings, user):
    settings.RATELIMIT_OVERRIDE_CACHE_SECONDS = 3600
    assert override_get(user_id=user.pk, policy="api") is None
    # Written behind this process's back, as another process's admin would.
    RateLimitOverride.objects.bulk_create(
        [RateLimitOverride(user=user, policy="api", limit=9, window=60)]
    )
    assert override_get(user_id=user.pk, policy="api") is None

    settings.RATELIMIT_OVERRIDE_CACHE_SECONDS = 0

    assert override_get(user_id=user.pk, policy="api") == (9, 60)


def test_an_override_for_an_unknown_policy_is_refused(user):
    override = RateLimitOverride(user=user, policy="nope", limit=5, window=60)

    with pytest.raises(ValidationError) as excinfo:
        override.full_clean()

    assert excinfo.value.message_dict == {"policy": ["Unknown policy; known: api, login."]}


def test_admin_lists_overrides(staff_client, user):
    RateLimitOverride.objects.create(user=user, policy="api", limit=500, window=60)

    response = staff_client.get("/admin/ratelimit/ratelimitoverride/")

    assert response.status_code == 200
    assert b"500" in response.content
