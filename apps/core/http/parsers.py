"""Request body parsers of the API."""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import IO, Any

from rest_framework.exceptions import ParseError
from rest_framework.parsers import JSONParser as DRFJSONParser

# Far above any body of this API (an order nests 3 levels), far below Python's recursion
# limit: nothing that later walks the body recursively (the idempotency fingerprint,
# a JSON column, a log) can run out of stack on it.
MAX_JSON_DEPTH = 64
TOO_DEEP = f"JSON parse error - nested deeper than {MAX_JSON_DEPTH} levels"
LONE_SURROGATE = "JSON parse error - a string holds a lone UTF-16 surrogate (\\ud800-\\udfff)"
_SURROGATE = re.compile("[\ud800-\udfff]")


class JSONParser(DRFJSONParser):
    """DRF's JSON parser, answering 400 to bodies that would fail later as a 500.

    - Nested deeper than ``MAX_JSON_DEPTH``: the standard library's decoder recurses
      once per level and raises RecursionError, not ValueError, past ~1,000 levels,
      which DRF let through; a body just under that failed wherever it was walked again.
    - A string with a lone surrogate (``"\\ud800"`` is valid JSON): no UTF-8 encoder
      takes it, so the database, Redis or a log line failed on it.
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
        problem = body_problem(data)
        if problem is not None:
            raise ParseError(problem)
        return data


def body_problem(data: Any, max_depth: int = MAX_JSON_DEPTH) -> str | None:
    """Return why parsed JSON ``data`` is refused (too deep, a lone surrogate), or None.

    Walked level by level, without recursion, touching each value once.
    """
    level: list[Any] = [data]
    depth = 1
    while level:
        children: list[Any] = []
        for value in level:
            if isinstance(value, str):
                if not value.isascii() and _SURROGATE.search(value):
                    return LONE_SURROGATE
            elif isinstance(value, dict | list):
                if depth > max_depth:
                    return TOO_DEEP
                children.extend(value)
                if isinstance(value, dict):
                    children.extend(value.values())
        level = children
        depth += 1
    return None
