"""OpenTelemetry tracing for web and worker processes.

Tracing is off unless ``OTEL_EXPORTER_OTLP_ENDPOINT`` is set; then spans go there over
OTLP/HTTP (the standard ``OTEL_*`` variables tune the exporter). It must start in each
process after the fork, because the batch exporter's thread does not survive one:
gunicorn's ``post_fork`` hook and Celery's ``worker_process_init`` signal call
``init_tracing``. Django, Celery (the sending and the executing side, so one order's
request and its tasks share one trace), psycopg and Redis are instrumented.
"""

from __future__ import annotations

import logging
import os
import threading
from typing import TYPE_CHECKING, Any

from opentelemetry import trace

from apps.core.forks import after_fork

if TYPE_CHECKING:
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import SpanExporter

logger = logging.getLogger(__name__)

# Probes and scrapes would otherwise be most of the spans.
EXCLUDED_URLS = "healthz,readyz,metrics"

_lock = threading.Lock()
# This process's provider; a forked child starts without one.
_provider: TracerProvider | None = None


def _forget_provider() -> None:
    global _lock, _provider
    _lock = threading.Lock()
    _provider = None


after_fork(_forget_provider)


def tracing_enabled() -> bool:
    """Return whether spans are exported from this process."""
    return bool(os.environ.get("OTEL_EXPORTER_OTLP_ENDPOINT"))


def init_tracing(service_name: str, *, exporter: SpanExporter | None = None) -> bool:
    """Start tracing in this process; return whether it is on.

    Without ``exporter`` (tests pass an in-memory one) spans are exported over OTLP when
    ``OTEL_EXPORTER_OTLP_ENDPOINT`` is set, and nothing is instrumented otherwise, so
    tracing that is off costs nothing. Calling it again in the same process only adds
    the new exporter.
    """
    global _provider
    if exporter is None and not tracing_enabled():
        return False
    # Imported here: the SDK takes ~20 ms to import, which every gunicorn worker would
    # pay at boot (post_fork) with tracing off.
    from opentelemetry.sdk.resources import Resource
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import BatchSpanProcessor, SimpleSpanProcessor

    with _lock:
        if _provider is None:
            resource = Resource.create(
                {"service.name": os.environ.get("OTEL_SERVICE_NAME", service_name)}
            )
            _provider = TracerProvider(resource=resource)
            trace.set_tracer_provider(_provider)
            _instrument()
            if exporter is None:
                from opentelemetry.exporter.otlp.proto.http.trace_exporter import (
                    OTLPSpanExporter,
                )

                _provider.add_span_processor(BatchSpanProcessor(OTLPSpanExporter()))
                logger.info(
                    "Tracing %s to %s", service_name, os.environ.get("OTEL_EXPORTER_OTLP_ENDPOINT")
                )
        if exporter is not None:
            _provider.add_span_processor(SimpleSpanProcessor(exporter))
    return True


def _instrument() -> None:
    from opentelemetry.instrumentation.celery import CeleryInstrumentor
    from opentelemetry.instrumentation.django import DjangoInstrumentor
    from opentelemetry.instrumentation.psycopg import PsycopgInstrumentor
    from opentelemetry.instrumentation.redis import RedisInstrumentor

    DjangoInstrumentor().instrument(excluded_urls=EXCLUDED_URLS)
    celery_instrumentor: Any = CeleryInstrumentor  # Its constructor is untyped.
    celery_instrumentor().instrument()
    # The SQL commenter would make every statement text unique and defeat statement caches.
    PsycopgInstrumentor().instrument(enable_commenter=False, skip_dep_check=True)
    RedisInstrumentor().instrument()
