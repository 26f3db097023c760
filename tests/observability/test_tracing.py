"""Spans for one order request share one trace id; its log lines carry it."""

from __future__ import annotations

import json
import logging
from collections.abc import Iterator

import pytest
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

from apps.observability.logging import ContextFilter, JsonFormatter
from apps.observability.tracing import init_tracing


@pytest.fixture(scope="module")
def spans() -> Iterator[InMemorySpanExporter]:
    exporter = InMemorySpanExporter()
    assert init_tracing("highscale-test", exporter=exporter) is True
    yield exporter
    # Leave the rest of the suite as uninstrumented as it found it.
    from opentelemetry.instrumentation.celery import CeleryInstrumentor
    from opentelemetry.instrumentation.django import DjangoInstrumentor
    from opentelemetry.instrumentation.psycopg import PsycopgInstrumentor
    from opentelemetry.instrumentation.redis import RedisInstrumentor

    for instrumentor in (
        DjangoInstrumentor,
        CeleryInstrumentor,
        PsycopgInstrumentor,
        RedisInstrumentor,
    ):
        instrumentor().uninstrument()


@pytest.mark.django_db(transaction=True)
def test_order_request_and_its_queries_share_one_trace_id_seen_in_its_logs(
    spans, auth_client, product
):
    spans.clear()
    lines: list[str] = []

    class Capture(logging.Handler):
        def emit(self, record: logging.LogRecord) -> None:
            lines.append(self.format(record))

    handler = Capture()
    handler.addFilter(ContextFilter())
    handler.setFormatter(JsonFormatter())
    access = logging.getLogger("highscale.access")
    access.addHandler(handler)
    try:
        response = auth_client.post(
            "/api/v1/orders",
            {"items": [{"product_id": product.pk, "quantity": 1}]},
            format="json",
            HTTP_IDEMPOTENCY_KEY="trace-order-1",
            HTTP_X_REQUEST_ID="trace-req-0001",
        )
    finally:
        access.removeHandler(handler)

    assert response.status_code == 201, response.content
    finished = spans.get_finished_spans()
    server = [s for s in finished if s.kind.name == "SERVER"]
    assert len(server) == 1
    trace_id = server[0].context.trace_id
    queries = [s for s in finished if s.attributes and "db.system" in str(dict(s.attributes))]
    assert queries, [s.name for s in finished]
    assert {s.context.trace_id for s in finished} == {trace_id}
    line = json.loads(lines[-1])
    assert line["request_id"] == "trace-req-0001"
    assert line["trace_id"] == format(trace_id, "032x")


def test_tracing_stays_off_without_an_endpoint_or_exporter(monkeypatch):
    monkeypatch.delenv("OTEL_EXPORTER_OTLP_ENDPOINT", raising=False)

    assert init_tracing("highscale-test") is False
