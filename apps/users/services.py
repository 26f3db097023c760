"""Writes to users: sign-up, profile changes, tokens and activity."""

from __future__ import annotations

from datetime import timedelta

from django.conf import settings
from django.contrib.auth import authenticate
from django.contrib.auth.password_validation import validate_password
from django.core.exceptions import ValidationError
from django.db import IntegrityError, transaction
from django.db.models import Q
from django.utils import timezone

from apps.core.db.state import bookkeeping_write
from apps.core.http.errors import Conflict, InvalidInput
from apps.users.models import AuthToken, User
from apps.users.tokens import new_token, token_digest

TAKEN = "Already taken."


def user_create(*, username: str, email: str, password: str) -> User:
    """Create an active user; refuse a weak password, and a taken username or email (409)."""
    user = User(username=username, email=User.objects.normalize_email(email))
    try:
        validate_password(password, user=user)
    except ValidationError as exc:
        raise InvalidInput(errors={"password": list(exc.messages)}) from None
    user.set_password(password)
    _raise_if_taken(username=username, email=user.email, exclude_id=None)
    try:
        with transaction.atomic():
            user.save()
    except IntegrityError:
        # A concurrent sign-up won the race the check above cannot close.
        raise Conflict(
            TAKEN, errors={"username": ["A user with that username or email already exists."]}
        ) from None
    return user


def user_update_profile(
    *, user: User, email: str | None = None, display_name: str | None = None
) -> User:
    """Change the user's email and/or display name."""
    fields: list[str] = []
    if email is not None:
        user.email = User.objects.normalize_email(email)
        _raise_if_taken(username=None, email=user.email, exclude_id=user.pk)
        fields.append("email")
    if display_name is not None:
        user.display_name = display_name
        fields.append("display_name")
    if fields:
        try:
            with transaction.atomic():
                user.save(update_fields=fields)
        except IntegrityError:
            raise Conflict(
                TAKEN, errors={"email": ["A user with that email already exists."]}
            ) from None
    return user


class InvalidCredentials(InvalidInput):
    """The username and password do not name an active user."""

    default_detail = "Unable to log in with the provided credentials."


def token_create(*, username: str, password: str) -> str:
    """Return a new API token for valid credentials, or raise InvalidCredentials.

    The token expires after ``AUTH_TOKEN_TTL_SECONDS``. The user keeps at most
    ``AUTH_TOKENS_PER_USER`` live tokens: the oldest beyond them, and every expired one,
    are revoked in the same transaction, under a lock of the user's row so that
    concurrent logins cannot both keep one too many.
    """
    user = authenticate(username=username, password=password)
    if not isinstance(user, User) or not user.is_active:
        raise InvalidCredentials()
    token = new_token()
    now = timezone.now()
    with transaction.atomic():
        User.objects.select_for_update().filter(pk=user.pk).values_list("pk").get()
        AuthToken.objects.create(
            user=user,
            digest=token_digest(token),
            expires_at=now + timedelta(seconds=settings.AUTH_TOKEN_TTL_SECONDS),
        )
        tokens = AuthToken.objects.filter(user_id=user.pk)
        kept = tokens.filter(expires_at__gt=now).order_by("-created_at", "-pk")
        kept_ids = list(kept.values_list("pk", flat=True)[: settings.AUTH_TOKENS_PER_USER])
        tokens.exclude(pk__in=kept_ids).delete()
    return token


def token_revoke(*, token: AuthToken) -> None:
    """Revoke one token: every process refuses it from the next request on."""
    AuthToken.objects.filter(pk=token.pk).delete()


def tokens_revoke(*, token_ids: list[int]) -> int:
    """Revoke the tokens with these ids; return how many there were."""
    deleted, _ = AuthToken.objects.filter(pk__in=token_ids).delete()
    return deleted


def tokens_revoke_all(*, user_id: int) -> int:
    """Revoke every token of the user; return how many there were."""
    deleted, _ = AuthToken.objects.filter(user_id=user_id).delete()
    return deleted


def token_touch_last_used(*, token: AuthToken) -> bool:
    """Record the token's use, writing at most once per interval; return whether it wrote.

    The conditional UPDATE makes concurrent requests with one token write once; the
    in-memory check skips it for a token used within the interval.
    """
    now = timezone.now()
    stale_before = now - timedelta(seconds=settings.AUTH_TOKEN_LAST_USED_INTERVAL_SECONDS)
    if token.last_used_at is not None and token.last_used_at >= stale_before:
        return False
    with bookkeeping_write():
        updated = (
            AuthToken.objects.filter(pk=token.pk)
            .filter(Q(last_used_at__isnull=True) | Q(last_used_at__lt=stale_before))
            .update(last_used_at=now)
        )
    if updated:
        token.last_used_at = now
    return updated == 1


def user_touch_last_active(*, user_id: int) -> bool:
    """Record activity, writing at most once per interval; return whether it wrote.

    The conditional UPDATE makes concurrent requests of one user write once, and keeps
    the per-request cost a no-op for everyone active within the interval.
    """
    now = timezone.now()
    stale_before = now - timedelta(seconds=settings.USER_LAST_ACTIVE_INTERVAL_SECONDS)
    with bookkeeping_write():
        updated = (
            User.objects.filter(pk=user_id)
            .filter(Q(last_active__isnull=True) | Q(last_active__lt=stale_before))
            .update(last_active=now)
        )
    return updated == 1


def _raise_if_taken(*, username: str | None, email: str, exclude_id: int | None) -> None:
    errors: dict[str, list[str]] = {}
    others = User.objects.exclude(pk=exclude_id) if exclude_id else User.objects.all()
    if username is not None and others.filter(username=username).exists():
        errors["username"] = ["A user with that username already exists."]
    if email and others.filter(email__iexact=email).exists():
        errors["email"] = ["A user with that email already exists."]
    if errors:
        # The input is well-formed; it conflicts with the current state of the users.
        raise Conflict(TAKEN, errors=errors)
