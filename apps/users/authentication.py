"""API authentication: ``Authorization: Token …`` against hashed tokens, and sessions.

Once a scheme knows the request's user, the request follows that user's writes
(``follow_user``): its reads see what any of the user's clients wrote.
"""

from __future__ import annotations

from typing import Any

from django.conf import settings
from drf_spectacular.authentication import SessionScheme as SpectacularSessionScheme
from rest_framework import authentication, exceptions
from rest_framework.request import Request

from apps.core.db.router import PRIMARY
from apps.core.db.sticking import follow_user
from apps.users.models import AuthToken, User
from apps.users.tokens import token_digest


class TokenAuthentication(authentication.TokenAuthentication):
    """DRF's token scheme, looking tokens up by digest so a database leak leaks none.

    The lookup reads the primary, never a replica or a cache: a token revoked or expired
    a moment ago is refused by every process from the next request on.
    """

    def authenticate(self, request: Request) -> tuple[User, Any] | None:
        """Return None at once for a request without an ``Authorization`` header.

        DRF reads the header through ``request.headers``, a mapping built from all of
        the request's META; an anonymous request need not pay for it.
        """
        if "HTTP_AUTHORIZATION" not in request.META:
            return None
        return super().authenticate(request)

    def authenticate_credentials(self, key: str) -> tuple[User, AuthToken]:
        tokens = AuthToken.objects.using(PRIMARY).select_related("user")
        token = tokens.filter(digest=token_digest(key)).first()
        if token is None or not token.user.is_active:
            raise exceptions.AuthenticationFailed("Invalid token.")
        if token.is_expired():
            raise exceptions.AuthenticationFailed("Token has expired; log in again.")
        # From here on the request's reads follow the user's writes; the user row itself
        # came from the primary with the token.
        follow_user(token.user_id)
        return token.user, token


class SessionAuthentication(authentication.SessionAuthentication):
    """DRF's session scheme, with no session lookup for a request without its cookie.

    Without the cookie Django's user is anonymous anyway; loading it would still read
    the session store and mark every API response ``Vary: Cookie``.
    """

    def authenticate(self, request: Request) -> tuple[Any, None] | None:
        """Return None at once for a request without a session cookie."""
        if settings.SESSION_COOKIE_NAME not in request.COOKIES:
            return None
        result = super().authenticate(request)
        if result is not None and follow_user(result[0].pk):
            result[0].refresh_from_db()
        return result


# drf-spectacular registers extensions in an unannotated __init_subclass__.
class SessionScheme(SpectacularSessionScheme):  # type: ignore[no-untyped-call]
    """Document the session scheme above as drf-spectacular documents DRF's."""

    target_class = "apps.users.authentication.SessionAuthentication"
