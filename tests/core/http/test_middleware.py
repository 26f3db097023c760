"""Request ids: accepted or generated, echoed, visible to logs, and never leaking."""

from __future__ import annotations

import logging
import os
import re

import pytest
from django.http import HttpRequest, HttpResponse, JsonResponse
from django.test import Client, RequestFactory
from django.urls import path

from apps.core.http.logging import RequestIdFilter
from apps.core.http.middleware import RequestIdMiddleware
from apps.core.http.request_context import REQUEST_ID_HEADER, current_request_id
from config import urls as config_urls

GENERATED_ID = re.compile(r"^[0-9a-f]{32}$")
LOGGER_NAME = "tests.core.request_id"

logger = logging.getLogger(LOGGER_NAME)


def _log_and_answer(request: HttpRequest) -> JsonResponse:
    logger.warning("handling the request")
    return JsonResponse({"seen": current_request_id()})


def _log_and_crash(request: HttpRequest) -> HttpResponse:
    logger.warning("about to fail")
    raise RuntimeError("view failed")


# The project's routes plus two test-only views, for the tests marked with this module.
urlpatterns = [
    path("test-only/log", _log_and_answer),
    path("test-only/crash", _log_and_crash),
    *config_urls.urlpatterns,
]
handler500 = config_urls.handler500


@pytest.fixture
def request_id_records(caplog: pytest.LogCaptureFixture) -> pytest.LogCaptureFixture:
    """Capture this module's log records with the project's request id filter applied."""
    caplog.set_level(logging.INFO, logger=LOGGER_NAME)
    caplog.handler.addFilter(RequestIdFilter())
    return caplog


def _records(caplog: pytest.LogCaptureFixture) -> list[logging.LogRecord]:
    return [r for r in caplog.records if r.name == LOGGER_NAME]


def _request_id(record: logging.LogRecord) -> str | None:
    """Return the ``request_id`` the filter attached, or None when it attached none."""
    value = getattr(record, "request_id", None)
    return value if isinstance(value, str) else None


def test_missing_request_id_is_generated_and_echoed(client):
    first = client.get("/healthz")
    second = client.get("/healthz")

    assert GENERATED_ID.match(first["X-Request-ID"])
    assert GENERATED_ID.match(second["X-Request-ID"])
    assert first["X-Request-ID"] != second["X-Request-ID"]


@pytest.mark.parametrize(
    "request_id",
    ["abc-1234", "9f1c2e7a-3b4d-4c5e-8f90-a1b2c3d4e5f6", "svc.frontend:42_retry", "r" * 128],
)
def test_well_formed_request_id_is_echoed_unchanged(client, request_id):
    response = client.get("/healthz", HTTP_X_REQUEST_ID=request_id)

    assert response["X-Request-ID"] == request_id


@pytest.mark.parametrize(
    "request_id",
    [
        "has spaces in it",
        "r" * 129,
        "<script>alert(1)</script>",
        "short",
        "semi;colon;injection",
    ],
)
def test_malformed_request_id_is_replaced_by_a_generated_one(client, request_id):
    response = client.get("/healthz", HTTP_X_REQUEST_ID=request_id)

    assert response["X-Request-ID"] != request_id
    assert GENERATED_ID.match(response["X-Request-ID"])


@pytest.mark.urls(__name__)
def test_view_sees_the_request_id_it_was_sent(client):
    response = client.get("/test-only/log", HTTP_X_REQUEST_ID="trace-view-0001")

    assert response.json() == {"seen": "trace-view-0001"}


@pytest.mark.urls(__name__)
def test_log_records_of_a_request_carry_its_request_id(client, request_id_records):
    response = client.get("/test-only/log", HTTP_X_REQUEST_ID="trace-logs-0002")

    records = _records(request_id_records)
    assert [r.getMessage() for r in records] == ["handling the request"]
    assert _request_id(records[0]) == response["X-Request-ID"] == "trace-logs-0002"


@pytest.mark.urls(__name__)
def test_log_records_carry_the_generated_id_when_none_was_sent(client, request_id_records):
    response = client.get("/test-only/log")

    records = _records(request_id_records)
    assert len(records) == 1
    assert _request_id(records[0]) == response["X-Request-ID"]
    assert GENERATED_ID.match(response["X-Request-ID"])


def test_log_records_outside_a_request_carry_a_dash(request_id_records):
    logger.warning("no request here")

    records = _records(request_id_records)
    assert len(records) == 1
    assert _request_id(records[0]) == "-"


@pytest.mark.urls(__name__)
def test_request_id_is_reset_after_the_request(client):
    client.get("/test-only/log", HTTP_X_REQUEST_ID="trace-reset-0003")

    assert current_request_id() is None


@pytest.mark.urls(__name__)
def test_request_id_is_reset_after_a_view_that_raised(request_id_records):
    client = Client(raise_request_exception=False)

    response = client.get("/test-only/crash", HTTP_X_REQUEST_ID="trace-crash-0004")

    assert response.status_code == 500
    assert response["X-Request-ID"] == "trace-crash-0004"
    assert response.json() == {"detail": "Internal server error."}
    assert [_request_id(r) for r in _records(request_id_records)] == ["trace-crash-0004"]
    assert current_request_id() is None


def test_request_id_is_reset_when_the_inner_handler_raises():
    seen: list[str | None] = []

    def failing(request: HttpRequest) -> HttpResponse:
        seen.append(current_request_id())
        raise RuntimeError("inner failure")

    middleware = RequestIdMiddleware(failing)
    request = RequestFactory().get("/", HTTP_X_REQUEST_ID="trace-inner-0005")

    with pytest.raises(RuntimeError, match="inner failure"):
        middleware(request)

    assert seen == ["trace-inner-0005"]
    assert current_request_id() is None


def test_a_forked_worker_generates_request_ids_of_its_own():
    middleware = RequestIdMiddleware(lambda request: HttpResponse())

    def new_id() -> str:
        return str(middleware(RequestFactory().get("/"))[REQUEST_ID_HEADER])

    new_id()  # the parent's generator exists before the fork
    read, write = os.pipe()
    pid = os.fork()
    if pid == 0:  # pragma: no cover - the child
        os.write(write, new_id().encode())
        os._exit(0)
    os.close(write)
    os.waitpid(pid, 0)
    with os.fdopen(read) as pipe:
        child = pipe.read()

    assert GENERATED_ID.match(child)
    assert child != new_id()
