"""The access log's cheap parts write exactly what the general ones would."""

from __future__ import annotations

import json
import logging
import random
from datetime import UTC, datetime
from decimal import Decimal

import pytest

from apps.observability.logging import AccessRecord, JsonFormatter, _dumps, _timestamp


def test_timestamp_is_the_text_datetime_gives_even_at_rounding_edges():
    rng = random.Random(4)
    values = [rng.uniform(0, 4_000_000_000) for _ in range(20_000)]
    values += [1_700_000_000 + edge for edge in (0.0, 0.0005, 0.0009995, 0.9995, 0.9999995)]

    for value in values:
        expected = datetime.fromtimestamp(value, tz=UTC).isoformat(timespec="milliseconds")
        assert _timestamp(value) == expected, value


def test_encoder_writes_what_json_dumps_writes():
    payload = {
        "message": 'GET /naïve "quoted" \\ path\n',
        "status": 200,
        "duration_ms": 0.125,
        "user_id": None,
        "ok": True,
        "nested": {"list": [1, 2.5, "x"]},
        "other": Decimal("1.5"),
    }

    assert _dumps(payload) == json.dumps(payload, default=str, ensure_ascii=False)


def test_encoder_reports_a_cycle_as_json_dumps_does():
    payload: dict[str, object] = {}
    payload["self"] = payload

    with pytest.raises(ValueError, match="Circular reference"):
        _dumps(payload)


def test_access_record_formats_like_a_record_made_by_the_logger():
    extra = {"method": "GET", "endpoint": "/api/v1/users/{id}", "status": 200, "duration_ms": 1.5}
    lean = AccessRecord("highscale.access", "%s %s %s", ("GET", "/api/v1/users/1", 200), extra)
    full = logging.getLogger("highscale.access").makeRecord(
        "highscale.access",
        logging.INFO,
        "(unknown file)",
        0,
        "%s %s %s",
        ("GET", "/api/v1/users/1", 200),
        None,
        extra=extra,
    )
    full.created, full.msecs, full.relativeCreated = lean.created, lean.msecs, lean.relativeCreated

    assert lean.__dict__ == full.__dict__
    assert JsonFormatter().format(lean) == JsonFormatter().format(full)
    plain = logging.Formatter("%(asctime)s %(levelname)s %(name)s %(message)s")
    assert plain.format(lean) == plain.format(full)
