"""``Authorization: Token …`` authentication against hashed tokens."""

from __future__ import annotations

from typing import Any

from rest_framework import authentication, exceptions

from apps.users.models import AuthToken, User
from apps.users.tokens import token_digest


class TokenAuthentication(authentication.TokenAuthentication):
    """DRF's token scheme, looking tokens up by digest so a database leak leaks none."""

    def authenticate_credentials(self, key: str) -> tuple[User, Any]:
        token = AuthToken.objects.select_related("user").filter(digest=token_digest(key)).first()
        if token is None or not token.user.is_active:
            raise exceptions.AuthenticationFailed("Invalid token.")
        return token.user, token
