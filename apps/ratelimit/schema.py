"""Document the 429 every throttled API operation may answer."""

from __future__ import annotations

import copy
from typing import Any

THROTTLED = {
    "description": (
        "Rate limit exceeded; `Retry-After` says how many seconds to wait. Every "
        "throttled response carries the `RateLimit` and `RateLimit-Policy` fields."
    ),
    "content": {
        "application/json": {"schema": {"$ref": "#/components/schemas/ErrorOutput"}},
    },
}
UNAVAILABLE = {
    "description": "A fail-closed rate limit could not be checked; retry shortly.",
    "content": {
        "application/json": {"schema": {"$ref": "#/components/schemas/ErrorOutput"}},
    },
}
HTTP_METHODS = {"get", "put", "post", "patch", "delete", "head", "options"}


def add_throttled_responses(
    result: dict[str, Any], generator: Any, request: Any, public: bool
) -> dict[str, Any]:
    """Add 429 (and 503 for fail-closed login) to every operation under ``/api/v1/``.

    Every API view runs the default throttle, so every operation can answer 429.
    """
    if "ErrorOutput" not in result.get("components", {}).get("schemas", {}):
        return result
    for path, operations in result.get("paths", {}).items():
        if not path.startswith("/api/v1/"):
            continue
        for method, operation in operations.items():
            if method not in HTTP_METHODS:
                continue
            # Copies, so the YAML rendering has no anchors and aliases.
            responses = operation.setdefault("responses", {})
            responses.setdefault("429", copy.deepcopy(THROTTLED))
            if path == "/api/v1/auth/token":
                responses.setdefault("503", copy.deepcopy(UNAVAILABLE))
    return result
