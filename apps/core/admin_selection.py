"""Admin actions that refuse a forged selection instead of failing on it."""

from __future__ import annotations

from typing import Any, TypeVar

from django.contrib import admin, messages
from django.contrib.admin import helpers
from django.core.exceptions import ValidationError
from django.db.models import Model, QuerySet
from django.http import HttpRequest, HttpResponse

_ModelT = TypeVar("_ModelT", bound=Model)

NOT_ITEMS = "The selection names items that cannot exist; no action was taken."


class CheckedSelectionAdmin(admin.ModelAdmin[_ModelT]):
    """A ModelAdmin whose actions refuse selected ids that are not primary keys.

    Django filters the changelist by the posted ids as they come, so a forged one
    (``abc``) failed inside the action as a 500. Here the action does not run, and the
    changelist says why, as it does for an empty selection.
    """

    def response_action(
        self, request: HttpRequest, queryset: QuerySet[Any], *args: Any, **kwargs: Any
    ) -> HttpResponse | None:
        pk = self.model._meta.pk
        for value in request.POST.getlist(helpers.ACTION_CHECKBOX_NAME):
            try:
                pk.to_python(value)
            except ValidationError:
                self.message_user(request, NOT_ITEMS, messages.WARNING)
                return None
        # Passed on as given: the stubs know a newer Django's extra argument.
        return super().response_action(request, queryset, *args, **kwargs)
