"""Routes of the users API: sign-up, own and public profiles, token login and revocation."""

from django.urls import path

from apps.users import apis

urlpatterns = [
    path("users", apis.UserSignupApi.as_view(), name="users-signup"),
    path("users/me", apis.OwnProfileApi.as_view(), name="users-me"),
    path("users/<int:user_id>", apis.PublicProfileApi.as_view(), name="users-public"),
    path("auth/token", apis.AuthTokenApi.as_view(), name="auth-token"),
    path("auth/tokens", apis.TokensRevokeApi.as_view(), name="auth-tokens"),
]
