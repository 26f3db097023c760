"""API tokens' lifecycle: revocation, expiry, the cap per user, last use, password changes."""

from __future__ import annotations

import time
from typing import cast

import pytest
from django.contrib.auth.hashers import make_password
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.utils import timezone
from rest_framework.test import APIClient

from apps.users.models import AuthToken, User
from apps.users.services import token_create
from apps.users.tokens import token_digest
from tests.factories import PASSWORD, UserFactory

pytestmark = pytest.mark.django_db

ME_URL = "/api/v1/users/me"
TOKEN_URL = "/api/v1/auth/token"
TOKENS_URL = "/api/v1/auth/tokens"


def with_token(token: str) -> APIClient:
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Token {token}")
    return client


def login(user: User, password: str = PASSWORD) -> str:
    return token_create(username=user.username, password=password)


def test_delete_auth_token_revokes_the_token_sent_and_no_other(user):
    sent, other = login(user), login(user)

    response = with_token(sent).delete(TOKEN_URL)

    assert response.status_code == 204
    assert response.content == b""
    refused = with_token(sent).get(ME_URL)
    assert refused.status_code == 401
    assert refused.json() == {"detail": "Invalid token."}
    assert with_token(other).get(ME_URL).status_code == 200


def test_delete_auth_token_without_a_token_is_a_401_and_revokes_nothing(api_client, user, token):
    response = api_client.delete(TOKEN_URL)

    assert response.status_code == 401
    assert response["WWW-Authenticate"] == "Token"
    assert AuthToken.objects.filter(digest=token_digest(token)).exists()


def test_login_still_ignores_a_stale_authorization_header(user):
    revoked = login(user)
    with_token(revoked).delete(TOKEN_URL)

    response = with_token(revoked).post(
        TOKEN_URL, {"username": user.username, "password": PASSWORD}, format="json"
    )

    assert response.status_code == 200
    assert with_token(response.json()["token"]).get(ME_URL).status_code == 200


def test_delete_auth_tokens_revokes_every_token_of_the_caller_only(user):
    mine = [login(user) for _ in range(3)]
    someone = cast(User, UserFactory())
    theirs = login(someone)

    response = with_token(mine[0]).delete(TOKENS_URL)

    assert response.status_code == 204
    assert [with_token(t).get(ME_URL).status_code for t in mine] == [401, 401, 401]
    assert not AuthToken.objects.filter(user=user).exists()
    assert with_token(theirs).get(ME_URL).status_code == 200


def test_delete_auth_tokens_needs_authentication(api_client, user, token):
    assert api_client.delete(TOKENS_URL).status_code == 401
    assert AuthToken.objects.filter(user=user).count() == 1


def test_a_token_expires_after_the_configured_ttl_with_a_clear_401(user, settings):
    settings.AUTH_TOKEN_TTL_SECONDS = 1
    token = login(user)
    row = AuthToken.objects.get(digest=token_digest(token))
    assert (row.expires_at - row.created_at).total_seconds() == pytest.approx(1, abs=0.05)
    assert with_token(token).get(ME_URL).status_code == 200

    # A real second passes: no clock is mocked.
    time.sleep(max(0.0, (row.expires_at - timezone.now()).total_seconds()) + 0.05)
    response = with_token(token).get(ME_URL)

    assert response.status_code == 401
    assert response.json() == {"detail": "Token has expired; log in again."}


def test_a_token_lives_seven_days_by_default(user):
    row = AuthToken.objects.get(digest=token_digest(login(user)))

    assert (row.expires_at - row.created_at).total_seconds() == pytest.approx(7 * 86400, abs=1)


def test_a_user_keeps_at_most_the_configured_number_of_tokens_the_oldest_going_first(
    user, settings
):
    settings.AUTH_TOKENS_PER_USER = 3
    tokens = [login(user) for _ in range(5)]

    statuses = [with_token(t).get(ME_URL).status_code for t in tokens]

    assert statuses == [401, 401, 200, 200, 200]
    assert AuthToken.objects.filter(user=user).count() == 3


def test_the_default_cap_is_ten_live_tokens(user):
    tokens = [login(user) for _ in range(11)]

    assert AuthToken.objects.filter(user=user).count() == 10
    assert not AuthToken.objects.filter(digest=token_digest(tokens[0])).exists()


def test_expired_tokens_are_dropped_at_the_next_login_and_do_not_count(user, settings):
    settings.AUTH_TOKEN_TTL_SECONDS = 1
    expired = login(user)
    expires_at = AuthToken.objects.get(digest=token_digest(expired)).expires_at
    time.sleep(max(0.0, (expires_at - timezone.now()).total_seconds()) + 0.05)
    settings.AUTH_TOKEN_TTL_SECONDS = 3600

    login(user)

    assert not AuthToken.objects.filter(digest=token_digest(expired)).exists()
    assert AuthToken.objects.filter(user=user).count() == 1


def test_last_used_at_is_written_once_under_a_hundred_requests(user, token):
    client = with_token(token)
    assert AuthToken.objects.get().last_used_at is None

    with CaptureQueriesContext(connection) as captured:
        statuses = {client.get(ME_URL).status_code for _ in range(100)}

    assert statuses == {200}
    updates = [
        q["sql"]
        for q in captured.captured_queries
        if q["sql"].startswith("UPDATE") and "users_authtoken" in q["sql"]
    ]
    assert len(updates) == 1
    assert "last_used_at" in updates[0]
    last_used = AuthToken.objects.get().last_used_at
    assert last_used is not None
    assert (timezone.now() - last_used).total_seconds() < 60


def test_last_used_at_is_written_again_once_the_interval_has_passed(user, token, settings):
    settings.AUTH_TOKEN_LAST_USED_INTERVAL_SECONDS = 1
    client = with_token(token)
    client.get(ME_URL)
    first = AuthToken.objects.get().last_used_at
    assert first is not None

    time.sleep(1.05)
    client.get(ME_URL)

    second = AuthToken.objects.get().last_used_at
    assert second is not None
    assert second > first


def test_a_password_changed_through_the_orm_revokes_every_old_token(user):
    old = [login(user) for _ in range(2)]

    changed = User.objects.get(pk=user.pk)
    changed.set_password("a-new-long-passphrase")
    changed.save()

    assert [with_token(t).get(ME_URL).status_code for t in old] == [401, 401]
    assert not AuthToken.objects.filter(user=user).exists()
    fresh = login(user, "a-new-long-passphrase")
    assert with_token(fresh).get(ME_URL).status_code == 200


def test_a_password_saved_with_update_fields_revokes_the_tokens(user, token):
    user.set_password("a-new-long-passphrase")
    user.save(update_fields=["password"])

    assert with_token(token).get(ME_URL).status_code == 401


def test_saving_other_fields_after_set_password_revokes_only_once_the_password_is_saved(
    user, token
):
    user.set_password("a-new-long-passphrase")
    user.save(update_fields=["display_name"])
    assert with_token(token).get(ME_URL).status_code == 200

    user.save()

    assert with_token(token).get(ME_URL).status_code == 401


def test_an_unusable_password_revokes_the_tokens(user, token):
    user.set_unusable_password()
    user.save()

    assert with_token(token).get(ME_URL).status_code == 401


def test_saving_a_user_without_a_password_change_keeps_the_tokens(user, token):
    user.display_name = "Ada"
    user.save()

    assert with_token(token).get(ME_URL).status_code == 200


def test_a_password_change_in_the_admin_revokes_the_users_tokens(client, user, token):
    client.force_login(cast(User, UserFactory(is_staff=True, is_superuser=True)))

    response = client.post(
        f"/admin/users/user/{user.pk}/password/",
        {"password1": "a-new-long-passphrase", "password2": "a-new-long-passphrase"},
    )

    assert response.status_code == 302
    assert with_token(token).get(ME_URL).status_code == 401


def test_a_rehash_on_login_is_not_a_password_change(user, token):
    # A hash whose salt is too short for today's hasher: Django re-hashes the unchanged
    # password at the next successful login and saves it, as after a hasher upgrade.
    weak = make_password(PASSWORD, salt="ab", hasher="md5")
    User.objects.filter(pk=user.pk).update(password=weak)

    login(user)

    assert User.objects.get(pk=user.pk).password != weak
    assert with_token(token).get(ME_URL).status_code == 200


@pytest.fixture
def staff_client(client):
    client.force_login(cast(User, UserFactory(is_staff=True, is_superuser=True)))
    return client


def test_the_users_admin_page_lists_its_tokens_by_digest_prefix_never_the_token(
    staff_client, user, token
):
    row = AuthToken.objects.get()
    with_token(token).get(ME_URL)

    page = staff_client.get(f"/admin/users/user/{user.pk}/change/").content.decode()

    assert row.digest[:8] in page
    assert row.digest not in page
    assert token not in page
    for column in ("Created at", "Last used at", "Expires at"):
        assert column in page


def test_the_admin_revoke_action_revokes_the_selected_tokens(staff_client, user):
    revoked, kept = login(user), login(user)
    chosen = AuthToken.objects.get(digest=token_digest(revoked))

    response = staff_client.post(
        "/admin/users/authtoken/",
        {"action": "revoke", "_selected_action": [chosen.pk]},
        follow=True,
    )

    assert response.status_code == 200
    assert "Revoked 1 token(s)." in response.content.decode()
    assert with_token(revoked).get(ME_URL).status_code == 401
    assert with_token(kept).get(ME_URL).status_code == 200


def test_the_token_changelist_lists_every_token(staff_client, user):
    for _ in range(3):
        login(user)

    response = staff_client.get("/admin/users/authtoken/")

    assert response.status_code == 200
    assert response.context["cl"].result_count == 3
