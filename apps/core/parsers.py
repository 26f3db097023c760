"""Request body parsers of the API."""

from __future__ import annotations

from collections.abc import Mapping
from typing import IO, Any

from rest_framework.exceptions import ParseError
from rest_framework.parsers import JSONParser as DRFJSONParser

# Far above any body of this API (an order nests 3 levels), far below Python's recursion
# limit: nothing that later walks the body recursively (the idempotency fingerprint,
# a JSON column, a log) can run out of stack on it.
MAX_JSON_DEPTH = 64
TOO_DEEP = f"JSON parse error - nested deeper than {MAX_JSON_DEPTH} levels"


class JSONParser(DRFJSONParser):
    """DRF's JSON parser, answering 400 to a body nested deeper than ``MAX_JSON_DEPTH``.

    The standard library's decoder recurses once per level of nesting and raises
    RecursionError, not ValueError, past ~1,000 levels, which DRF let through as a 500;
    a body just under that parsed, then failed as a 500 wherever it was walked again.
    """

    def parse(
        self,
        stream: IO[Any],
        media_type: str | None = None,
        parser_context: Mapping[str, Any] | None = None,
    ) -> Any:
        try:
            data = super().parse(stream, media_type, parser_context)
        except RecursionError:
            raise ParseError(TOO_DEEP) from None
        if nested_deeper_than(data, MAX_JSON_DEPTH):
            raise ParseError(TOO_DEEP)
        return data


def nested_deeper_than(data: Any, limit: int) -> bool:
    """Return whether ``data`` (parsed JSON) nests lists and objects more than ``limit`` deep."""
    pending: list[tuple[Any, int]] = [(data, 1)]
    while pending:
        value, depth = pending.pop()
        if isinstance(value, dict):
            children: Any = value.values()
        elif isinstance(value, list):
            children = value
        else:
            continue
        if depth > limit:
            return True
        pending.extend((child, depth + 1) for child in children)
    return False
