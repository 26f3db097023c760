"""Keyset pages for the admin's order list: newest first, no OFFSET, no count(*).

Django's changelist pages by OFFSET and counts every matching row for the page links.
On a sharded coordinator both ship every order of every shard. Here a page is the
``list_per_page`` newest orders below an ``id__lt`` cursor, read by ``order_page`` (one
window of ids over all shards at once), and the only count is of the page just read:
one more row than fits says an older page exists, and the "Older" link moves the
cursor below the page's last id.
"""

from __future__ import annotations

from functools import cached_property
from typing import Any

from django.contrib.admin.views.main import PAGE_VAR, ChangeList
from django.core.paginator import InvalidPage, Page, Paginator
from django.db.models import QuerySet

from apps.orders.models import Order
from apps.orders.selectors import order_page

CURSOR_VAR = "id__lt"


class KeysetPaginator(Paginator[Order]):
    """One page of orders below a cursor; counts nothing beyond one row past the page."""

    def __init__(self, orders: QuerySet[Order], per_page: int, *, before_id: int | None) -> None:
        super().__init__(orders, per_page)
        self.orders = orders
        self.before_id = before_id

    @cached_property
    def rows(self) -> list[Order]:
        """Return the page's orders and at most one more (which says an older page exists)."""
        return order_page(self.orders, before_id=self.before_id, size=self.per_page + 1)

    @cached_property
    def count(self) -> int:
        return len(self.rows)

    def page(self, number: int | str) -> Page[Order]:
        # Only the first page below the cursor exists: older pages move the cursor.
        if self.validate_number(number) != 1:
            raise InvalidPage("Keyset pages have no number; follow the Older link.")
        return Page(self.rows[: self.per_page], 1, self)


def cursor_of(params: Any) -> int | None:
    """Return the ``id__lt`` cursor of a changelist's query parameters, if it is an id."""
    value = params.get(CURSOR_VAR)
    try:
        return int(value) if value is not None else None
    except ValueError:
        return None


class KeysetChangeList(ChangeList):
    """A changelist that links to the next older keyset page instead of page numbers."""

    def older_query_string(self) -> str | None:
        """Return the query string of the next older page, or None on the oldest page."""
        if not self.multi_page or not self.result_list:
            return None
        last = list(self.result_list)[-1]
        return self.get_query_string({CURSOR_VAR: last.pk}, [PAGE_VAR])

    def newest_query_string(self) -> str | None:
        """Return the query string of the newest page, or None when this is it."""
        if CURSOR_VAR not in self.params:
            return None
        return self.get_query_string(remove=[CURSOR_VAR, PAGE_VAR])
