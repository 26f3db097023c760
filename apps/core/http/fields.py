"""Input serializer fields that take only the JSON type their schema declares.

DRF's fields coerce: a ``CharField`` turns ``0`` into ``"0"``, an ``IntegerField`` turns
``"7"`` into ``7``. The OpenAPI schema says ``string`` and ``integer``, so a client
(or a fuzzer) that sends another type is told so with a 400, and what the API accepts
is exactly what its schema describes. Strings are also taken as sent, untrimmed: a
trimmed value would pass ``maxLength`` checks the schema says it fails.
"""

from __future__ import annotations

from typing import Any

from rest_framework import serializers

NOT_A_STRING = "Not a valid string."
NOT_AN_INTEGER = "A valid integer is required."


class _StrictString:
    """Refuse anything but a JSON string before the DRF field's own checks run."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        kwargs.setdefault("trim_whitespace", False)
        super().__init__(*args, **kwargs)

    def to_internal_value(self, data: Any) -> str:
        if not isinstance(data, str):
            raise serializers.ValidationError(NOT_A_STRING, code="invalid")
        value: str = super().to_internal_value(data)  # type: ignore[misc]  # the DRF field's
        return value


class StrictCharField(_StrictString, serializers.CharField):
    """A ``CharField`` that takes only strings, untrimmed."""


class StrictRegexField(_StrictString, serializers.RegexField):
    """A ``RegexField`` that takes only strings, untrimmed."""


class StrictEmailField(_StrictString, serializers.EmailField):
    """An ``EmailField`` that takes only strings, untrimmed."""


class StrictIntegerField(serializers.IntegerField):
    """An ``IntegerField`` that takes only JSON integers.

    As in JSON Schema, a number with a zero fraction (``7.0``) is an integer; a string
    (``"7"``), a boolean or any other number is refused.
    """

    def to_internal_value(self, data: Any) -> int:
        if isinstance(data, bool) or not (
            isinstance(data, int) or (isinstance(data, float) and data.is_integer())
        ):
            raise serializers.ValidationError(NOT_AN_INTEGER, code="invalid")
        return super().to_internal_value(int(data))
