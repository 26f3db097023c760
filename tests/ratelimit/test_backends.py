"""The Redis store's lean command path: its own connection, recovering from what Redis does."""

from __future__ import annotations

import threading

import pytest
from django.conf import settings
from opentelemetry.instrumentation.redis import RedisInstrumentor
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

from apps.ratelimit.backends import BREAKER_SECONDS, redis_backend
from apps.ratelimit.limiter import Decision, hit
from tests.servers import wait_until


@pytest.fixture
def policy(set_policy) -> str:
    set_policy("lean", limit=1000, window=60, algorithm="sliding_window")
    return "lean"


def _backend():
    return redis_backend(settings.RATELIMIT_REDIS_URL, settings.RATELIMIT_REDIS_TIMEOUT_MS)


def test_check_after_redis_forgot_the_script_loads_it_again_and_counts(policy, redis_client):
    assert hit(policy, "k").remaining == 999
    redis_client.script_flush()

    decision = hit(policy, "k")

    assert decision.store_failed is False
    assert decision.remaining == 998


def test_check_after_its_connection_was_killed_reconnects_once_the_breaker_closes(
    policy, redis_client
):
    assert hit(policy, "k").remaining == 999
    local_port = _backend()._pipe().connection._sock.getsockname()[1]
    assert redis_client.client_kill(f"127.0.0.1:{local_port}")

    failed = hit(policy, "k")
    # The breaker skips Redis for its second; after it a new connection counts again.
    decisions: list[Decision] = []

    def counted_again() -> bool:
        decisions.append(hit(policy, "k"))
        return not decisions[-1].store_failed

    wait_until(counted_again, BREAKER_SECONDS + 5, "the limiter reconnecting")

    assert failed.store_failed is True
    assert failed.allowed is True  # This policy fails open.
    assert decisions[-1].remaining == 998


def test_each_thread_checks_on_a_connection_of_its_own(policy):
    connections: list[object] = []

    def check() -> None:
        hit(policy, "k")
        connections.append(_backend()._pipe().connection)

    threads = [threading.Thread(target=check) for _ in range(3)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    check()

    assert len({id(c) for c in connections}) == 4
    assert hit(policy, "k").remaining == 1000 - 5


def test_check_is_a_redis_span_when_redis_py_is_traced(policy):
    exporter = InMemorySpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    RedisInstrumentor().instrument(tracer_provider=provider)
    try:
        decision = hit(policy, "k")
    finally:
        RedisInstrumentor().uninstrument()

    assert decision.remaining == 999
    assert [span.name for span in exporter.get_finished_spans()] == ["EVALSHA"]
