"""HTTP API of users: sign-up, token login and revocation, own profile, public profiles."""

from __future__ import annotations

from typing import Any

from django.conf import settings
from django.core.validators import RegexValidator
from django.http import HttpRequest, HttpResponse
from drf_spectacular.utils import extend_schema
from rest_framework import exceptions, serializers, status
from rest_framework.authentication import BaseAuthentication
from rest_framework.permissions import AllowAny, IsAuthenticated
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.throttling import BaseThrottle

from apps.core.http.api import (
    RenderedByEtag,
    error_responses,
    id_path_parameter,
    request_user_id,
    validated,
)
from apps.core.http.fields import StrictCharField, StrictEmailField, StrictRegexField
from apps.ratelimit.throttles import ApiRateThrottle, LoginRateThrottle
from apps.ratelimit.views import RateLimitedApiView
from apps.users.authentication import TokenAuthentication
from apps.users.cache import user_profile_get_cached
from apps.users.login_failures import login_failure_record
from apps.users.models import AuthToken, User
from apps.users.serializers import PublicProfileOutput
from apps.users.services import (
    InvalidCredentials,
    token_create,
    token_revoke,
    tokens_revoke_all,
    user_create,
    user_update_profile,
)

# What the sign-up validators enforce, stated in the schema. drf-spectacular writes the
# username's ``\Z`` (no trailing newline passes it) as ECMA-262's ``$``. The password's
# length and "not entirely digits" are Django's MinimumLengthValidator and
# NumericPasswordValidator as configured; tests/users/test_apis.py checks they agree.
USERNAME_PATTERN = r"^[\w.@+-]+\Z"
USERNAME_MAX_LENGTH = 150
PASSWORD_MIN_LENGTH = 8
PASSWORD_MAX_LENGTH = 128
NOT_ONLY_DIGITS_PATTERN = r"^(?!\d+\Z)"
TOO_SHORT = (
    f"This password is too short. It must contain at least {PASSWORD_MIN_LENGTH} characters."
)
PASSWORD_RULES = (
    f"{PASSWORD_MIN_LENGTH} to {PASSWORD_MAX_LENGTH} characters, not entirely digits. Also "
    "refused (400, under `errors.password`): a password on Django's list of 20,000 common "
    "passwords, or one too similar to the username or email."
)


TAKEN_TEXT = {409: "The username or email belongs to another user; `errors` names which."}


def username_field(**kwargs: Any) -> StrictRegexField:
    """Return the input field of a username: what ``User.username`` can hold."""
    return StrictRegexField(
        USERNAME_PATTERN,
        max_length=USERNAME_MAX_LENGTH,
        help_text="Letters, digits and @ . + - _ only.",
        **kwargs,
    )


class OwnProfileOutput(serializers.ModelSerializer[User]):
    class Meta:
        model = User
        fields = ["id", "username", "email", "display_name", "date_joined", "last_active"]
        read_only_fields = fields


class UserSignupApi(RateLimitedApiView):
    permission_classes = [AllowAny]
    authentication_classes: list[type] = []

    class SignupInput(serializers.Serializer[None]):
        username = username_field()
        email = StrictEmailField(max_length=254)
        # Length and digits checked here, in Django's words, so the schema states them.
        password = StrictCharField(
            min_length=PASSWORD_MIN_LENGTH,
            max_length=PASSWORD_MAX_LENGTH,
            validators=[
                RegexValidator(NOT_ONLY_DIGITS_PATTERN, "This password is entirely numeric.")
            ],
            error_messages={"min_length": TOO_SHORT},
            write_only=True,
            help_text=PASSWORD_RULES,
        )

    @extend_schema(
        request=SignupInput,
        responses={201: OwnProfileOutput, **error_responses(400, 409, descriptions=TAKEN_TEXT)},
        operation_id="users_signup",
    )
    def post(self, request: Request) -> Response:
        data = validated(self.SignupInput, request.data)
        user = user_create(**data)
        return Response(OwnProfileOutput(user).data, status=status.HTTP_201_CREATED)


class TokenCreateApi(RateLimitedApiView):
    permission_classes = [AllowAny]
    authentication_classes: list[type] = []
    # Brute-force guard, per client address and username; refuses when Redis is down.
    throttle_classes = [LoginRateThrottle]

    class TokenInput(serializers.Serializer[None]):
        username = username_field()
        password = StrictCharField(max_length=PASSWORD_MAX_LENGTH)

    class TokenOutput(serializers.Serializer[None]):
        token = serializers.CharField()

    @extend_schema(
        request=TokenInput,
        responses={200: TokenOutput, **error_responses(400)},
        operation_id="auth_token_create",
    )
    def post(self, request: Request) -> Response:
        data = validated(self.TokenInput, request.data)
        token = token_create(**data)
        return Response({"token": token})


class AuthTokenApi(TokenCreateApi):
    """``/auth/token``: the login (POST, above) and the revocation of the token sent (DELETE).

    One path, two kinds of request: the login reads no credentials header and counts
    under the ``login`` policy; the revocation needs the token (without one it is a 401)
    and counts as an API call.
    """

    # Whether this request revokes; set before DRF asks for the authenticators.
    revoking = False

    def initialize_request(self, request: HttpRequest, *args: Any, **kwargs: Any) -> Request:
        self.revoking = request.method == "DELETE"
        return super().initialize_request(request, *args, **kwargs)

    def get_authenticators(self) -> list[BaseAuthentication]:
        if self.revoking:
            return [TokenAuthentication()]
        return super().get_authenticators()

    def get_throttles(self) -> list[BaseThrottle]:
        if self.revoking:
            return [ApiRateThrottle()]
        return super().get_throttles()

    def handle_exception(self, exc: Exception) -> Response:
        if isinstance(exc, InvalidCredentials):
            login_failure_record(endpoint="api", request=self.request)
        return super().handle_exception(exc)

    @extend_schema(
        request=None,
        responses={204: None, **error_responses(401)},
        operation_id="auth_token_revoke",
    )
    def delete(self, request: Request) -> Response:
        if not isinstance(request.auth, AuthToken):
            raise exceptions.NotAuthenticated()
        token_revoke(token=request.auth)
        return Response(status=status.HTTP_204_NO_CONTENT)


class TokensRevokeApi(RateLimitedApiView):
    """``DELETE /auth/tokens``: log the caller out everywhere."""

    permission_classes = [IsAuthenticated]

    @extend_schema(
        request=None,
        responses={204: None, **error_responses(401)},
        operation_id="auth_tokens_revoke",
    )
    def delete(self, request: Request) -> Response:
        tokens_revoke_all(user_id=request_user_id(request))
        return Response(status=status.HTTP_204_NO_CONTENT)


class OwnProfileApi(RateLimitedApiView):
    permission_classes = [IsAuthenticated]

    class ProfileUpdateInput(serializers.Serializer[None]):
        email = StrictEmailField(max_length=254, required=False)
        display_name = StrictCharField(max_length=150, required=False, allow_blank=True)

    @extend_schema(
        responses={200: OwnProfileOutput, **error_responses(401)}, operation_id="users_me_retrieve"
    )
    def get(self, request: Request) -> Response:
        return Response(OwnProfileOutput(_me(request)).data)

    @extend_schema(
        request=ProfileUpdateInput,
        responses={
            200: OwnProfileOutput,
            **error_responses(400, 401, 409, descriptions=TAKEN_TEXT),
        },
        operation_id="users_me_update",
    )
    def patch(self, request: Request) -> Response:
        data = validated(self.ProfileUpdateInput, request.data)
        user = user_update_profile(user=_me(request), **data)
        return Response(OwnProfileOutput(user).data)


class PublicProfileApi(RateLimitedApiView):
    permission_classes = [AllowAny]

    @extend_schema(
        responses={200: PublicProfileOutput, **error_responses(404)},
        parameters=[id_path_parameter("user_id")],
        operation_id="users_public_retrieve",
    )
    def get(self, request: Request, user_id: int) -> HttpResponse | Response:
        # The document is PublicProfileOutput's, made when the cache is filled; its ETag
        # is stored with it, so a revalidation that hits the cache reads no database.
        profile = user_profile_get_cached(user_id=user_id)
        headers = {"ETag": profile.etag, "Cache-Control": shared_cache_control()}
        if profile.etag in if_none_match(request):
            return Response(status=status.HTTP_304_NOT_MODIFIED, headers=headers)
        return rendered_profiles.response(request, profile.etag, profile.data, headers)


# The public profiles' JSON bytes by ETag.
rendered_profiles = RenderedByEtag()


def _me(request: Request) -> User:
    if not isinstance(request.user, User):
        raise exceptions.NotAuthenticated()
    return request.user


def shared_cache_control() -> str:
    """Return the public profile's ``Cache-Control``."""
    # Short: an edge cache cannot be told about an invalidation, so its copy may be
    # stale for at most max-age; revalidating with If-None-Match is cheap (a 304).
    max_age = settings.USER_PROFILE_HTTP_MAX_AGE_SECONDS
    return f"public, max-age={max_age}, s-maxage={max_age}, must-revalidate"


def if_none_match(request: Request | HttpRequest) -> set[str]:
    """Return the entity tags of the request's ``If-None-Match`` (weak ones as strong)."""
    raw = str(request.META.get("HTTP_IF_NONE_MATCH", ""))
    return {part.strip().removeprefix("W/") for part in raw.split(",") if part.strip()}
