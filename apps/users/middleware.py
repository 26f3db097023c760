"""The middleware that records when an authenticated user, and its token, were last seen."""

from __future__ import annotations

from collections.abc import Callable

from django.conf import settings
from django.http import HttpRequest, HttpResponseBase
from django.utils import timezone
from django.utils.functional import SimpleLazyObject

from apps.users.models import AuthToken
from apps.users.services import token_touch_last_used, user_touch_last_active


class LastActiveMiddleware:
    """Refresh ``last_active`` after the view, at most once per interval per user.

    The API token that authenticated the request (DRF sets it as the request's
    ``auth``) gets its ``last_used_at`` refreshed the same way.

    Runs after the response is built, so a user authenticated by the API's token scheme
    (set on the request by DRF) counts as well as a session user. The in-memory check
    on the loaded user skips the UPDATE entirely for anyone seen recently. A request
    without a session cookie is anonymous unless a scheme authenticated it, so its lazy
    session user is never loaded here.
    """

    def __init__(self, get_response: Callable[[HttpRequest], HttpResponseBase]) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponseBase:
        response = self.get_response(request)
        user = getattr(request, "user", None)
        # Django's lazy session user (DRF replaces it with the user a scheme found):
        # without the cookie it is anonymous, and loading it would read the session store
        # and mark the response `Vary: Cookie`, for health checks too.
        if (
            isinstance(user, SimpleLazyObject)
            and settings.SESSION_COOKIE_NAME not in request.COOKIES
        ):
            return response
        if user is not None and user.is_authenticated and response.status_code < 500:
            last = getattr(user, "last_active", None)
            interval = settings.USER_LAST_ACTIVE_INTERVAL_SECONDS
            if last is None or (timezone.now() - last).total_seconds() >= interval:
                user_touch_last_active(user_id=user.pk)
            token = getattr(request, "auth", None)
            if isinstance(token, AuthToken):
                token_touch_last_used(token=token)
        return response
