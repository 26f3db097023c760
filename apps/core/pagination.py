"""Cursor pagination shared by every list endpoint."""

from __future__ import annotations

from rest_framework.pagination import CursorPagination


class NewestFirstCursorPagination(CursorPagination):
    """Page through rows newest first by primary key, stable under concurrent inserts."""

    ordering = "-id"
    page_size = 50
    page_size_query_param = "limit"
    max_page_size = 200


class OldestFirstCursorPagination(NewestFirstCursorPagination):
    """Page through rows in primary-key order."""

    ordering = "id"
