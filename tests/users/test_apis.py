"""Behaviour of the users API: sign-up, token login, own profile and public profiles."""

from __future__ import annotations

import hashlib
from datetime import datetime, timedelta
from typing import Any

import pytest
from django.contrib.auth.hashers import get_hasher, identify_hasher
from django.utils import timezone
from rest_framework.renderers import JSONRenderer
from rest_framework.test import APIClient

from apps.users.models import AuthToken, User
from apps.users.serializers import PublicProfileOutput
from tests.factories import PASSWORD, UserFactory

SIGNUP_URL = "/api/v1/users"
TOKEN_URL = "/api/v1/auth/token"
ME_URL = "/api/v1/users/me"
STRONG_PASSWORD = "violet-Lantern-88-orbit"

pytestmark = pytest.mark.django_db


def _iso(value: datetime | None) -> str | None:
    """Render a datetime the way the API does (ISO 8601, UTC as ``Z``)."""
    if value is None:
        return None
    return value.isoformat().replace("+00:00", "Z")


def _public_url(user_id: int) -> str:
    return f"/api/v1/users/{user_id}"


def _signup(client: APIClient, **overrides: Any) -> Any:
    payload = {"username": "alice", "email": "alice@example.com", "password": STRONG_PASSWORD}
    payload.update(overrides)
    return client.post(SIGNUP_URL, payload, format="json")


# --- Sign-up --------------------------------------------------------------------------


def test_signup_creates_user_and_returns_own_profile_without_password(api_client):
    response = _signup(api_client)

    assert response.status_code == 201
    user = User.objects.get(username="alice")
    assert response.json() == {
        "id": user.pk,
        "username": "alice",
        "email": "alice@example.com",
        "display_name": "",
        "date_joined": _iso(user.date_joined),
        "last_active": None,
    }
    assert STRONG_PASSWORD not in response.content.decode()
    assert user.password not in response.content.decode()


def test_signup_stores_password_hashed_never_in_clear(api_client):
    _signup(api_client)

    user = User.objects.get(username="alice")
    assert user.password != STRONG_PASSWORD
    assert STRONG_PASSWORD not in user.password
    assert identify_hasher(user.password).algorithm == get_hasher().algorithm
    assert user.check_password(STRONG_PASSWORD)
    assert user.is_active
    assert not user.is_staff
    assert not user.is_superuser


def test_signup_with_taken_username_conflicts_with_username_error(api_client, user):
    response = _signup(api_client, username=user.username, email="someone-else@example.com")

    assert response.status_code == 409
    assert response.json() == {
        "detail": "Already taken.",
        "errors": {"username": ["A user with that username already exists."]},
    }
    assert User.objects.count() == 1


def test_signup_with_email_taken_in_another_case_conflicts_with_email_error(api_client):
    UserFactory(username="bob", email="bob@example.com")

    response = _signup(api_client, username="robert", email="BOB@EXAMPLE.COM")

    assert response.status_code == 409
    assert response.json() == {
        "detail": "Already taken.",
        "errors": {"email": ["A user with that email already exists."]},
    }
    assert not User.objects.filter(username="robert").exists()


def test_signup_with_short_numeric_password_is_refused_with_password_errors(api_client):
    response = _signup(api_client, password="123")

    assert response.status_code == 400
    assert response.json() == {
        "detail": "Invalid input.",
        "errors": {
            "password": [
                "This password is entirely numeric.",
                "This password is too short. It must contain at least 8 characters.",
            ]
        },
    }
    assert not User.objects.exists()


def test_signup_with_common_password_is_refused_with_django_message(api_client):
    response = _signup(api_client, password="password1")

    assert response.status_code == 400
    assert response.json() == {
        "detail": "Invalid input.",
        "errors": {"password": ["This password is too common."]},
    }
    assert not User.objects.exists()


def test_signup_schema_states_the_configured_password_length_and_digit_rules():
    from django.contrib.auth.password_validation import (
        MinimumLengthValidator,
        NumericPasswordValidator,
        get_default_password_validators,
    )

    from apps.users.apis import PASSWORD_MIN_LENGTH

    validators = get_default_password_validators()
    lengths = [v.min_length for v in validators if isinstance(v, MinimumLengthValidator)]
    assert lengths == [PASSWORD_MIN_LENGTH]
    assert any(isinstance(v, NumericPasswordValidator) for v in validators)


@pytest.mark.parametrize(
    ("field", "value"),
    [("username", 0), ("username", ["alice"]), ("email", 1), ("password", 12345678901)],
)
def test_signup_with_a_non_string_field_is_refused(api_client, field, value):
    response = _signup(api_client, **{field: value})

    assert response.status_code == 400
    assert response.json() == {
        "detail": "Invalid input.",
        "errors": {field: ["Not a valid string."]},
    }
    assert not User.objects.exists()


@pytest.mark.parametrize("value", [0, 1.5, True, None, ["Bob"], {"name": "Bob"}])
def test_patch_own_profile_with_a_non_string_display_name_is_refused(auth_client, user, value):
    original = user.display_name

    response = auth_client.patch(ME_URL, {"display_name": value}, format="json")

    assert response.status_code == 400
    assert list(response.json()["errors"]) == ["display_name"]
    user.refresh_from_db()
    assert user.display_name == original


def test_token_with_a_numeric_password_is_refused_as_invalid_input(api_client, user):
    response = api_client.post(
        "/api/v1/auth/token", {"username": user.username, "password": 1234}, format="json"
    )

    assert response.status_code == 400
    assert response.json() == {
        "detail": "Invalid input.",
        "errors": {"password": ["Not a valid string."]},
    }


def test_signup_with_password_equal_to_username_is_refused(api_client):
    response = _signup(api_client, username="zebrafish42", password="zebrafish42")

    assert response.status_code == 400
    assert response.json() == {
        "detail": "Invalid input.",
        "errors": {"password": ["The password is too similar to the username."]},
    }
    assert not User.objects.exists()


def test_signup_with_no_fields_lists_every_missing_field(api_client):
    response = api_client.post(SIGNUP_URL, {}, format="json")

    assert response.status_code == 400
    assert response.json() == {
        "detail": "Invalid input.",
        "errors": {
            "username": ["This field is required."],
            "email": ["This field is required."],
            "password": ["This field is required."],
        },
    }
    assert not User.objects.exists()


def test_signup_with_invalid_email_is_refused_with_email_error(api_client):
    response = _signup(api_client, email="not-an-email")

    assert response.status_code == 400
    assert response.json() == {
        "detail": "Invalid input.",
        "errors": {"email": ["Enter a valid email address."]},
    }
    assert not User.objects.exists()


def test_signup_with_malformed_json_answers_400_in_json(api_client):
    response = api_client.generic(
        "POST", SIGNUP_URL, '{"username": "alice",', content_type="application/json"
    )

    assert response.status_code == 400
    assert response["Content-Type"] == "application/json"
    assert response.json()["detail"].startswith("JSON parse error")
    assert not User.objects.exists()


def test_signup_with_form_encoded_body_answers_415_in_json(client):
    response = client.post(
        SIGNUP_URL,
        "username=alice&email=alice%40example.com&password=violet-Lantern-88-orbit",
        content_type="application/x-www-form-urlencoded",
    )

    assert response.status_code == 415
    assert response["Content-Type"] == "application/json"
    assert response.json() == {
        "detail": 'Unsupported media type "application/x-www-form-urlencoded" in request.'
    }
    assert not User.objects.exists()


# --- Token login ----------------------------------------------------------------------


def test_token_for_valid_credentials_authenticates_later_requests(api_client, user):
    response = api_client.post(
        TOKEN_URL, {"username": user.username, "password": PASSWORD}, format="json"
    )

    assert response.status_code == 200
    body = response.json()
    assert list(body) == ["token"]
    token = body["token"]
    assert isinstance(token, str)
    assert len(token) >= 40

    me = APIClient().get(ME_URL, HTTP_AUTHORIZATION=f"Token {token}")
    assert me.status_code == 200
    assert me.json()["id"] == user.pk
    assert me.json()["username"] == user.username


def test_token_is_stored_only_as_its_sha256_digest(api_client, user):
    response = api_client.post(
        TOKEN_URL, {"username": user.username, "password": PASSWORD}, format="json"
    )
    token = response.json()["token"]

    rows = list(AuthToken.objects.values())
    assert len(rows) == 1
    assert rows[0]["user_id"] == user.pk
    assert rows[0]["digest"] == hashlib.sha256(token.encode()).hexdigest()
    for value in rows[0].values():
        assert token not in str(value)


def test_token_with_wrong_password_is_refused_and_creates_nothing(api_client, user):
    response = api_client.post(
        TOKEN_URL, {"username": user.username, "password": "wrong-password"}, format="json"
    )

    assert response.status_code == 400
    assert response["Content-Type"] == "application/json"
    assert response.json() == {"detail": "Unable to log in with the provided credentials."}
    assert not AuthToken.objects.exists()


def test_token_for_unknown_username_is_refused_like_a_wrong_password(api_client, db):
    response = api_client.post(
        TOKEN_URL, {"username": "nobody", "password": PASSWORD}, format="json"
    )

    assert response.status_code == 400
    assert response.json() == {"detail": "Unable to log in with the provided credentials."}
    assert not AuthToken.objects.exists()


def test_token_for_inactive_user_is_refused_and_creates_nothing(api_client, user):
    User.objects.filter(pk=user.pk).update(is_active=False)

    response = api_client.post(
        TOKEN_URL, {"username": user.username, "password": PASSWORD}, format="json"
    )

    assert response.status_code == 400
    assert response.json() == {"detail": "Unable to log in with the provided credentials."}
    assert not AuthToken.objects.exists()


def test_token_without_password_lists_the_missing_field(api_client, user):
    response = api_client.post(TOKEN_URL, {"username": user.username}, format="json")

    assert response.status_code == 400
    assert response.json() == {
        "detail": "Invalid input.",
        "errors": {"password": ["This field is required."]},
    }
    assert not AuthToken.objects.exists()


def test_garbage_token_is_refused_with_401_json(api_client, user):
    response = api_client.get(ME_URL, HTTP_AUTHORIZATION="Token not-a-real-token")

    assert response.status_code == 401
    assert response["Content-Type"] == "application/json"
    assert response["WWW-Authenticate"] == "Token"
    assert response.json() == {"detail": "Invalid token."}


def test_token_of_a_deactivated_user_stops_working(auth_client, user):
    assert auth_client.get(ME_URL).status_code == 200
    User.objects.filter(pk=user.pk).update(is_active=False)

    response = auth_client.get(ME_URL)

    assert response.status_code == 401
    assert response.json() == {"detail": "Invalid token."}


# --- Own profile ----------------------------------------------------------------------


def test_own_profile_without_credentials_answers_401_json(api_client, user):
    response = api_client.get(ME_URL)

    assert response.status_code == 401
    assert response["Content-Type"] == "application/json"
    assert response.json() == {"detail": "Authentication credentials were not provided."}


def test_own_profile_returns_private_fields_of_the_caller(auth_client, user):
    seen_recently = timezone.now() - timedelta(seconds=60)
    User.objects.filter(pk=user.pk).update(last_active=seen_recently)

    response = auth_client.get(ME_URL)

    assert response.status_code == 200
    user.refresh_from_db()
    assert user.last_active == seen_recently
    assert response.json() == {
        "id": user.pk,
        "username": user.username,
        "email": user.email,
        "display_name": user.display_name,
        "date_joined": _iso(user.date_joined),
        "last_active": _iso(user.last_active),
    }


def test_patch_own_profile_changes_display_name_and_email(auth_client, user):
    response = auth_client.patch(
        ME_URL, {"display_name": "Alice A.", "email": "new-address@example.com"}, format="json"
    )

    assert response.status_code == 200
    body = response.json()
    assert body["id"] == user.pk
    assert body["username"] == user.username
    assert body["display_name"] == "Alice A."
    assert body["email"] == "new-address@example.com"
    user.refresh_from_db()
    assert user.display_name == "Alice A."
    assert user.email == "new-address@example.com"


def test_patch_own_profile_with_only_display_name_keeps_email(auth_client, user):
    original_email = user.email

    response = auth_client.patch(ME_URL, {"display_name": "Just A Name"}, format="json")

    assert response.status_code == 200
    user.refresh_from_db()
    assert user.display_name == "Just A Name"
    assert user.email == original_email


def test_patch_own_profile_to_another_users_email_conflicts(auth_client, user):
    UserFactory(username="other", email="other@example.com")
    original_email = user.email

    response = auth_client.patch(ME_URL, {"email": "Other@Example.com"}, format="json")

    assert response.status_code == 409
    assert response.json() == {
        "detail": "Already taken.",
        "errors": {"email": ["A user with that email already exists."]},
    }
    user.refresh_from_db()
    assert user.email == original_email


def test_patch_own_profile_with_invalid_email_is_refused(auth_client, user):
    original_email = user.email

    response = auth_client.patch(
        ME_URL, {"email": "missing-at-sign", "display_name": "Ignored"}, format="json"
    )

    assert response.status_code == 400
    assert response.json() == {
        "detail": "Invalid input.",
        "errors": {"email": ["Enter a valid email address."]},
    }
    user.refresh_from_db()
    assert user.email == original_email
    assert user.display_name != "Ignored"


def test_patch_own_profile_without_credentials_changes_nothing(api_client, user):
    original_name = user.display_name

    response = api_client.patch(ME_URL, {"display_name": "Intruder"}, format="json")

    assert response.status_code == 401
    user.refresh_from_db()
    assert user.display_name == original_name


# --- Public profile -------------------------------------------------------------------


def test_public_profile_shows_only_public_fields(api_client, user):
    response = api_client.get(_public_url(user.pk))

    assert response.status_code == 200
    assert response.json() == {
        "id": user.pk,
        "username": user.username,
        "display_name": user.display_name,
        "date_joined": _iso(user.date_joined),
    }
    assert user.email not in response.content.decode()


def test_public_profile_is_its_output_serializers_rendering(api_client, user):
    response = api_client.get(_public_url(user.pk))

    assert response.content == JSONRenderer().render(PublicProfileOutput(user).data)
    assert response["Content-Type"] == "application/json"


def test_public_profile_is_cacheable_by_clients(api_client, user):
    response = api_client.get(_public_url(user.pk))

    directives = {part.strip() for part in response["Cache-Control"].split(",")}
    assert "public" in directives
    max_age = [d for d in directives if d.startswith("max-age=")]
    assert len(max_age) == 1
    assert int(max_age[0].removeprefix("max-age=")) > 0


def test_public_profile_answers_304_with_empty_body_for_matching_etag(api_client, user):
    first = api_client.get(_public_url(user.pk))
    etag = first["ETag"]
    assert etag.startswith('"')
    assert etag.endswith('"')

    second = api_client.get(_public_url(user.pk), HTTP_IF_NONE_MATCH=etag)

    assert second.status_code == 304
    assert second.content == b""
    assert second["ETag"] == etag


def test_public_profile_matches_etag_among_several_and_weak_ones(api_client, user):
    etag = api_client.get(_public_url(user.pk))["ETag"]

    listed = api_client.get(_public_url(user.pk), HTTP_IF_NONE_MATCH=f'"stale", {etag}')
    weak = api_client.get(_public_url(user.pk), HTTP_IF_NONE_MATCH=f"W/{etag}")

    assert listed.status_code == 304
    assert weak.status_code == 304


def test_public_profile_answers_200_for_a_stale_etag(api_client, user):
    response = api_client.get(_public_url(user.pk), HTTP_IF_NONE_MATCH='"0123456789abcdef"')

    assert response.status_code == 200
    assert response.json()["id"] == user.pk


def test_public_profile_etag_changes_when_display_name_changes(
    api_client, auth_client, user, django_capture_on_commit_callbacks
):
    old_etag = api_client.get(_public_url(user.pk))["ETag"]
    # The cached profile is invalidated on commit; run the commit hooks the test's
    # enclosing transaction would otherwise hold back.
    with django_capture_on_commit_callbacks(execute=True):
        patched = auth_client.patch(ME_URL, {"display_name": "Renamed"}, format="json")
    assert patched.status_code == 200

    response = api_client.get(_public_url(user.pk), HTTP_IF_NONE_MATCH=old_etag)

    assert response.status_code == 200
    assert response.json()["display_name"] == "Renamed"
    assert response["ETag"] != old_etag


def test_public_profile_of_unknown_user_is_404_json(api_client, db):
    response = api_client.get(_public_url(987654321))

    assert response.status_code == 404
    assert response["Content-Type"] == "application/json"
    assert response.json() == {"detail": "User not found."}


def test_public_profile_of_inactive_user_is_404(api_client, user):
    User.objects.filter(pk=user.pk).update(is_active=False)

    response = api_client.get(_public_url(user.pk))

    assert response.status_code == 404
    assert response.json() == {"detail": "User not found."}
    assert user.username not in response.content.decode()
