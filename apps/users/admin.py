"""The admin of users and groups, with the checked selection actions."""

from django.contrib import admin
from django.contrib.auth.admin import GroupAdmin as DjangoGroupAdmin
from django.contrib.auth.admin import UserAdmin as DjangoUserAdmin
from django.contrib.auth.models import Group

from apps.core.admin_selection import CheckedSelectionAdmin
from apps.users.models import User


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


# Django registers groups itself; registered again with the same checked actions.
if admin.site.is_registered(Group):
    admin.site.unregister(Group)


@admin.register(Group)
class GroupAdmin(CheckedSelectionAdmin[Group], DjangoGroupAdmin):
    pass
