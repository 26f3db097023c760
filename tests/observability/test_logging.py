"""JSON log lines carry timestamp, level, logger, message and the request's ids."""

from __future__ import annotations

import json
import logging
import sys

import pytest

from apps.observability.logging import ContextFilter, JsonFormatter


class _Capture(logging.Handler):
    def __init__(self) -> None:
        super().__init__()
        self.lines: list[str] = []
        self.addFilter(ContextFilter())
        self.setFormatter(JsonFormatter())

    def emit(self, record: logging.LogRecord) -> None:
        self.lines.append(self.format(record))


@pytest.fixture
def access_lines():
    handler = _Capture()
    logger = logging.getLogger("highscale.access")
    logger.addHandler(handler)
    try:
        yield handler.lines
    finally:
        logger.removeHandler(handler)


def test_access_line_is_one_json_object_with_request_and_user_ids(auth_client, user, access_lines):
    response = auth_client.get("/api/v1/users/me", HTTP_X_REQUEST_ID="req-12345678")

    assert response.status_code == 200
    assert len(access_lines) == 1
    assert "\n" not in access_lines[0]
    line = json.loads(access_lines[0])
    assert line["level"] == "INFO"
    assert line["logger"] == "highscale.access"
    assert line["message"] == "GET /api/v1/users/me 200"
    assert line["request_id"] == "req-12345678"
    assert line["user_id"] == user.pk
    assert line["trace_id"] is None
    assert line["endpoint"] == "/api/v1/users/me"
    assert line["status"] == 200
    assert line["timestamp"].endswith("+00:00")


@pytest.mark.django_db
def test_anonymous_request_logs_no_user_id_and_costs_no_query(
    client, access_lines, django_assert_num_queries
):
    with django_assert_num_queries(0):
        client.get("/healthz", HTTP_X_REQUEST_ID="anon-1234567")

    line = json.loads(access_lines[0])
    assert line["user_id"] is None
    assert line["request_id"] == "anon-1234567"


@pytest.mark.django_db
def test_a_session_users_id_is_logged_once_the_view_has_loaded_the_user(client, user, access_lines):
    client.force_login(user)

    client.get("/admin/")

    assert json.loads(access_lines[-1])["user_id"] == user.pk


@pytest.mark.django_db
def test_a_session_user_the_view_never_loaded_is_not_loaded_for_the_log(
    client, user, access_lines, django_assert_num_queries, settings
):
    # LastActiveMiddleware loads a session user on purpose; the log alone must not.
    settings.MIDDLEWARE = [m for m in settings.MIDDLEWARE if not m.endswith("LastActiveMiddleware")]
    client.force_login(user)

    with django_assert_num_queries(0):
        client.get("/healthz")

    assert json.loads(access_lines[-1])["user_id"] is None


def test_record_outside_a_request_has_null_ids_and_keeps_its_exception():
    formatter = JsonFormatter()
    try:
        raise ValueError("boom")
    except ValueError:
        record = logging.getLogger("x").makeRecord(
            "x", logging.ERROR, __file__, 1, "failed %s", ("once",), exc_info=sys.exc_info()
        )
    ContextFilter().filter(record)

    line = json.loads(formatter.format(record))

    assert line["message"] == "failed once"
    assert line["request_id"] is None
    assert line["user_id"] is None
    assert line["trace_id"] is None
    assert "ValueError: boom" in line["exception"]
