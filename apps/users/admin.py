"""The admin of users, their API tokens and groups, with the checked selection actions."""

from __future__ import annotations

from typing import Any

from django.contrib import admin, messages
from django.contrib.admin.forms import AdminAuthenticationForm
from django.contrib.auth.admin import GroupAdmin as DjangoGroupAdmin
from django.contrib.auth.admin import UserAdmin as DjangoUserAdmin
from django.contrib.auth.models import Group
from django.core.exceptions import ValidationError
from django.db.models import QuerySet
from django.http import HttpRequest

from apps.core.admin_selection import CheckedSelectionAdmin
from apps.users.login_failures import login_failure_record
from apps.users.models import AuthToken, User
from apps.users.services import tokens_revoke


class AdminLoginForm(AdminAuthenticationForm):
    """The admin's login form; a refused attempt is counted and logged."""

    def clean(self) -> dict[str, Any]:
        try:
            return super().clean()
        except ValidationError:
            if self.request is not None:
                login_failure_record(endpoint="admin", request=self.request)
            raise


# AdminSite's documented hook for the form of its login view.
admin.site.login_form = AdminLoginForm


class AuthTokenInline(admin.TabularInline[AuthToken, User]):
    """A user's live and expired tokens; deleting one revokes it."""

    model = AuthToken
    extra = 0
    max_num = 0
    can_delete = True
    verbose_name = "API token"
    verbose_name_plural = "API tokens (tick Delete to revoke)"
    fields = ("digest_prefix", "created_at", "last_used_at", "expires_at")
    readonly_fields = fields
    ordering = ("-created_at",)


@admin.register(User)
class UserAdmin(CheckedSelectionAdmin[User], DjangoUserAdmin[User]):
    list_display = ("username", "email", "display_name", "is_staff", "last_active", "date_joined")
    list_filter = ("is_staff", "is_superuser", "is_active")
    search_fields = ("username", "email", "display_name")
    ordering = ("-last_active",)
    readonly_fields = ("last_active", "last_login", "date_joined")
    fieldsets = (
        *(DjangoUserAdmin.fieldsets or ()),
        ("Profile", {"fields": ("display_name", "last_active")}),
    )
    inlines = [AuthTokenInline]


@admin.register(AuthToken)
class AuthTokenAdmin(CheckedSelectionAdmin[AuthToken]):
    """Every API token by user, newest first; tokens are made by logging in, not here."""

    list_display = ("digest_prefix", "user", "created_at", "last_used_at", "expires_at")
    list_select_related = ("user",)
    search_fields = ("user__username", "digest")
    ordering = ("-created_at",)
    readonly_fields = ("user", "digest_prefix", "created_at", "last_used_at", "expires_at")
    fields = readonly_fields
    actions = ["revoke"]

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: AuthToken | None = None) -> bool:
        return False

    @admin.action(description="Revoke selected tokens", permissions=["delete"])
    def revoke(self, request: HttpRequest, queryset: QuerySet[AuthToken]) -> None:
        revoked = tokens_revoke(token_ids=list(queryset.values_list("pk", flat=True)))
        self.message_user(request, f"Revoked {revoked} token(s).", messages.SUCCESS)


# Django registers groups itself; registered again with the same checked actions.
if admin.site.is_registered(Group):
    admin.site.unregister(Group)


@admin.register(Group)
class GroupAdmin(CheckedSelectionAdmin[Group], DjangoGroupAdmin):
    pass
