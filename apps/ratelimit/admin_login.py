"""The admin's login under the ``login`` policy, answered by an HTML page past its limit.

Only a POST (an attempt) counts, per client address and username, as at the API's
token login; showing the form does not. The policy fails closed: without its store
the page says logging in is unavailable (503).
"""

from __future__ import annotations

from django.contrib import admin
from django.http import HttpRequest, HttpResponseBase
from django.template.response import TemplateResponse
from django.urls import reverse
from django.utils.cache import add_never_cache_headers
from django.views.decorators.debug import sensitive_post_parameters

from apps.ratelimit.decorators import ratelimit
from apps.ratelimit.limiter import Decision

LOGIN_POLICY = "login"


def login_refused_page(request: HttpRequest, decision: Decision) -> TemplateResponse:
    """Return the admin-styled page refusing a login attempt: 429, or 503 without a store."""
    context = {
        **admin.site.each_context(request),
        "title": "Too many login attempts",
        "retry_after": decision.retry_after_seconds,
        "unavailable": decision.store_failed,
        "login_url": reverse("admin:login", current_app=admin.site.name),
    }
    status = 503 if decision.store_failed else 429
    response = TemplateResponse(request, "ratelimit/login_refused.html", context, status=status)
    add_never_cache_headers(response)
    return response


@sensitive_post_parameters("password")
@ratelimit(LOGIN_POLICY, methods=("POST",), refused=login_refused_page)
def admin_login(request: HttpRequest) -> HttpResponseBase:
    """Show or check the admin's login form, once the attempt is within the limit."""
    return admin.site.login(request)
