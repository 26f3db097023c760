"""Spans for one order request share one trace id; its log lines carry it."""

from __future__ import annotations

import json
import logging
from collections.abc import Iterator
from typing import Any

import pytest
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

from apps.observability.logging import ContextFilter, JsonFormatter
from apps.observability.tracing import init_tracing
from deploy.local.processes import wait_until


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


@pytest.fixture
def in_process_worker(spans: InMemorySpanExporter) -> Iterator[None]:
    """Consume this run's queues from a Celery worker thread of this process.

    A thread, so its spans reach the in-memory exporter; it starts with an empty
    context of its own, so what it knows of the request can only come from the
    messages it takes off RabbitMQ.
    """
    from celery import current_app
    from celery.contrib.testing.worker import start_worker

    from tests.events_worker import _purge_run_queues

    _purge_run_queues()
    # Name the queues: an earlier in-process worker of this session may have narrowed
    # the app's queue selection to a queue of its own.
    queues = [queue.name for queue in current_app.conf.task_queues]
    with start_worker(
        current_app, pool="solo", perform_ping_check=False, shutdown_timeout=20, queues=queues
    ):
        yield


@pytest.mark.django_db(transaction=True)
def test_order_request_and_its_consumer_tasks_share_one_trace_id_and_request_id(
    spans, in_process_worker, auth_client, product
):
    from apps.orders.models import Order

    spans.clear()
    lines: list[dict[str, Any]] = []

    class Capture(logging.Handler):
        def emit(self, record: logging.LogRecord) -> None:
            lines.append({"thread": record.threadName, **json.loads(self.format(record))})

    handler = Capture()
    handler.addFilter(ContextFilter())
    handler.setFormatter(JsonFormatter())
    loggers = [logging.getLogger(name) for name in ("highscale.access", "apps.orders.events")]
    # Explicit levels: an earlier in-process Celery worker may have raised the root's.
    levels = [logger.level for logger in loggers]
    for logger in loggers:
        logger.addHandler(handler)
        logger.setLevel(logging.INFO)
    try:
        response = auth_client.post(
            "/api/v1/orders",
            {"items": [{"product_id": product.pk, "quantity": 1}]},
            format="json",
            HTTP_IDEMPOTENCY_KEY="trace-order-2",
            HTTP_X_REQUEST_ID="trace-req-0002",
        )
        assert response.status_code == 201, response.content
        order_id = response.json()["id"]
        consumers = {
            "orders.reserve_inventory",
            "orders.send_confirmation_email",
            "orders.notify_warehouse",
        }

        def consumed() -> bool:
            names = {
                s.attributes.get("celery.task_name")
                for s in spans.get_finished_spans()
                if s.kind.name == "CONSUMER" and s.attributes
            }
            return consumers <= names

        wait_until(consumed, 60, "the three consumer task spans")
    finally:
        for logger, level in zip(loggers, levels, strict=True):
            logger.removeHandler(handler)
            logger.setLevel(level)

    assert Order.objects.get(pk=order_id).status == Order.Status.CONFIRMED
    finished = spans.get_finished_spans()
    server = [s for s in finished if s.kind.name == "SERVER"]
    assert len(server) == 1
    trace_id = server[0].context.trace_id
    producers = [s for s in finished if s.kind.name == "PRODUCER"]
    tasks = [s for s in finished if s.kind.name == "CONSUMER"]
    assert {s.attributes.get("celery.task_name") for s in tasks if s.attributes} == consumers
    # Published from the request's commit hook, and (email, warehouse) from the task's.
    assert len(producers) == 3
    assert {s.context.trace_id for s in [*server, *producers, *tasks]} == {trace_id}
    # Each task span is the child of the span that published its message.
    producer_ids = {s.context.span_id for s in producers}
    assert all(t.parent is not None and t.parent.span_id in producer_ids for t in tasks)

    access = [line for line in lines if line["logger"] == "highscale.access"]
    consumer_lines = [line for line in lines if line["logger"] == "apps.orders.events"]
    assert len(access) == 1
    assert consumer_lines
    # The consumers ran on the worker's thread, not the request's.
    assert {line["thread"] for line in consumer_lines}.isdisjoint({access[0]["thread"]})
    assert {line["request_id"] for line in [*access, *consumer_lines]} == {"trace-req-0002"}
    assert {line["trace_id"] for line in [*access, *consumer_lines]} == {format(trace_id, "032x")}


@pytest.mark.django_db(transaction=True)
def test_event_published_later_by_the_sweep_continues_the_request_trace(
    spans, in_process_worker, auth_client, product
):
    import threading

    from django.db import connection

    from apps.core.events import outbox
    from apps.core.events.models import OutboxEvent
    from apps.orders.models import Order

    spans.clear()
    # The broker "failed a moment ago": the commit leaves the event for the sweep.
    outbox.outbox_breaker().failed()
    response = auth_client.post(
        "/api/v1/orders",
        {"items": [{"product_id": product.pk, "quantity": 1}]},
        format="json",
        HTTP_IDEMPOTENCY_KEY="trace-order-sweep",
        HTTP_X_REQUEST_ID="trace-req-0003",
    )
    assert response.status_code == 201, response.content
    order_id = response.json()["id"]
    event = OutboxEvent.objects.get()
    assert event.sent_at is None
    server = [s for s in spans.get_finished_spans() if s.kind.name == "SERVER"]
    assert len(server) == 1
    trace_id = server[0].context.trace_id
    assert event.traceparent.split("-")[1] == format(trace_id, "032x")
    assert [s for s in spans.get_finished_spans() if s.kind.name == "PRODUCER"] == []

    outbox.outbox_breaker().reset()
    swept: list[int] = []

    def sweep() -> None:
        try:
            swept.append(outbox.outbox_sweep(min_age_seconds=0))
        finally:
            connection.close()

    # Another thread, as beat's worker would be: none of the request's context is current.
    sweeper = threading.Thread(target=sweep)
    sweeper.start()
    sweeper.join(30)
    assert swept == [1]

    consumers = {
        "orders.reserve_inventory",
        "orders.send_confirmation_email",
        "orders.notify_warehouse",
    }

    def consumed() -> bool:
        names = {
            s.attributes.get("celery.task_name")
            for s in spans.get_finished_spans()
            if s.kind.name == "CONSUMER" and s.attributes
        }
        return consumers <= names

    wait_until(consumed, 60, "the three consumer task spans")
    assert Order.objects.get(pk=order_id).status == Order.Status.CONFIRMED
    finished = spans.get_finished_spans()
    producers = [s for s in finished if s.kind.name == "PRODUCER"]
    tasks = [s for s in finished if s.kind.name == "CONSUMER"]
    assert len(producers) == 3
    assert {s.context.trace_id for s in [*producers, *tasks]} == {trace_id}
    # The sweep's publish hangs off the request's span, as the relay's would.
    reserve_producer = next(
        s for s in producers if s.attributes and "reserve_inventory" in str(dict(s.attributes))
    )
    assert reserve_producer.parent is not None
    assert reserve_producer.parent.span_id == server[0].context.span_id
    producer_ids = {s.context.span_id for s in producers}
    assert all(t.parent is not None and t.parent.span_id in producer_ids for t in tasks)
