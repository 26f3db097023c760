"""Admin of the event plumbing: dead letters (replay, discard) and the outbox, read-only."""

from __future__ import annotations

from collections.abc import Callable

from django.contrib import admin, messages
from django.db.models import QuerySet
from django.http import HttpRequest

from apps.core.admin_selection import CheckedSelectionAdmin
from apps.core.events.dead_letters import dead_letter_discard, dead_letter_replay
from apps.core.events.models import DeadLetter, OutboxEvent
from apps.core.http.errors import ApplicationError


@admin.register(DeadLetter)
class DeadLetterAdmin(CheckedSelectionAdmin[DeadLetter]):
    list_display = ("id", "task", "status", "attempts", "reason", "last_failed_at")
    list_filter = ("status", "task")
    search_fields = ("task", "message_id", "correlation_id", "reason")
    date_hierarchy = "last_failed_at"
    ordering = ("-last_failed_at",)
    actions = ("replay", "discard")
    readonly_fields = (
        "task",
        "message_id",
        "payload",
        "headers",
        "reason",
        "attempts",
        "correlation_id",
        "status",
        "first_failed_at",
        "last_failed_at",
        "resolved_at",
    )

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    @admin.action(description="Replay the selected dead letters")
    def replay(self, request: HttpRequest, queryset: QuerySet[DeadLetter]) -> None:
        self._apply(request, queryset, dead_letter_replay, "replayed")

    @admin.action(description="Discard the selected dead letters")
    def discard(self, request: HttpRequest, queryset: QuerySet[DeadLetter]) -> None:
        self._apply(request, queryset, dead_letter_discard, "discarded")

    def _apply(
        self,
        request: HttpRequest,
        queryset: QuerySet[DeadLetter],
        action: Callable[..., DeadLetter],
        done: str,
    ) -> None:
        count = 0
        for pk in queryset.values_list("pk", flat=True):
            try:
                action(dead_letter_id=pk)
            except ApplicationError as exc:
                self.message_user(request, exc.detail, messages.WARNING)
            else:
                count += 1
        self.message_user(request, f"{count} dead letter(s) {done}.", messages.SUCCESS)


@admin.register(OutboxEvent)
class OutboxEventAdmin(admin.ModelAdmin[OutboxEvent]):
    list_display = ("id", "event_type", "created_at", "sent_at", "publish_attempts")
    list_filter = ("event_type",)
    search_fields = ("=id", "correlation_id")
    ordering = ("-created_at",)

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: OutboxEvent | None = None) -> bool:
        return False

    def has_delete_permission(self, request: HttpRequest, obj: OutboxEvent | None = None) -> bool:
        return False
