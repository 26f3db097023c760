"""Cursor pagination shared by every list endpoint."""

from __future__ import annotations

from typing import Any

from rest_framework.exceptions import NotFound, ValidationError
from rest_framework.pagination import Cursor, CursorPagination
from rest_framework.request import Request

# The primary keys are PostgreSQL `bigint`s: a position outside this range names no row.
_MIN_ID, _MAX_ID = -(2**63), 2**63 - 1


class NewestFirstCursorPagination(CursorPagination):
    """Page through rows newest first by primary key, stable under concurrent inserts."""

    ordering = "-id"
    page_size = 50
    page_size_query_param = "limit"
    max_page_size = 200

    def get_page_size(self, request: Request) -> int:
        """Return the page size: ``limit`` when given, refusing one out of range.

        DRF answers a malformed or repeated ``limit`` with the default page size and
        clamps one above the maximum; the schema declares an integer from 1 to
        ``max_page_size``, so anything else is a 400.
        """
        name = self.page_size_query_param
        values = request.query_params.getlist(name) if name else []
        if not values:
            return self.page_size
        value = values[0]
        well_formed = len(values) == 1 and len(value) <= 9 and value.isascii() and value.isdigit()
        size = int(value) if well_formed else 0
        if not 1 <= size <= self.max_page_size:
            raise ValidationError(
                {name: [f"Give one integer from 1 to {self.max_page_size}."]}, code="invalid"
            )
        return size

    def get_schema_operation_parameters(self, view: Any) -> list[dict[str, Any]]:
        """Return DRF's parameters, ``limit`` with the range the API accepts."""
        parameters: list[dict[str, Any]] = super().get_schema_operation_parameters(view)
        for parameter in parameters:
            if parameter["name"] == self.page_size_query_param:
                parameter["schema"] = {
                    "type": "integer",
                    "minimum": 1,
                    "maximum": self.max_page_size,
                }
        return parameters

    def decode_cursor(self, request: Request) -> Cursor | None:
        """Return the request's cursor, refusing one whose position is not a primary key.

        DRF checks the cursor's offset and direction but hands its position to the
        query as it is, so a forged cursor (``p=2026-``) failed in the database as a 500.
        """
        cursor = super().decode_cursor(request)
        if cursor is None or cursor.position is None or not self._ordered_by_id():
            # Another ordering field would need its own check of the position.
            return cursor
        try:
            position = int(cursor.position)
        except ValueError:
            raise NotFound(self.invalid_cursor_message) from None
        if not _MIN_ID <= position <= _MAX_ID:
            raise NotFound(self.invalid_cursor_message)
        return cursor

    def _ordered_by_id(self) -> bool:
        # A string as declared; `paginate_queryset` has made it a tuple by now.
        ordering = self.ordering
        first = ordering if isinstance(ordering, str) else ordering[0]
        return first.lstrip("-") == "id"


class OldestFirstCursorPagination(NewestFirstCursorPagination):
    """Page through rows in primary-key order."""

    ordering = "id"
