from django.contrib import admin

from apps.core.admin_selection import CheckedSelectionAdmin
from apps.ratelimit.models import RateLimitOverride


@admin.register(RateLimitOverride)
class RateLimitOverrideAdmin(CheckedSelectionAdmin[RateLimitOverride]):
    list_display = ("user", "policy", "limit", "window", "note", "updated_at")
    list_filter = ("policy",)
    search_fields = ("user__username", "note")
    raw_id_fields = ("user",)
    readonly_fields = ("updated_at",)
