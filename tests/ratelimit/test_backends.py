"""The Redis store through redis-py: recovering from what Redis does, traced like any call."""

from __future__ import annotations

import contextlib

import pytest
import redis
from opentelemetry.instrumentation.redis import RedisInstrumentor
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

from apps.ratelimit.limiter import hit


@pytest.fixture
def policy(set_policy) -> str:
    set_policy("lean", limit=1000, window=60, algorithm="sliding_window")
    return "lean"


def test_check_after_redis_forgot_the_script_loads_it_again_and_counts(policy, redis_client):
    assert hit(policy, "k").remaining == 999
    redis_client.script_flush()

    decision = hit(policy, "k")

    assert decision.store_failed is False
    assert decision.remaining == 998


def test_check_after_its_connection_was_killed_counts_on_a_new_one(policy, private_redis):
    assert hit(policy, "k").remaining == 999
    with contextlib.closing(redis.Redis.from_url(private_redis.url)) as admin:
        # Every connection but this one: the limiter's.
        assert admin.client_kill_filter(_type="normal", skipme=True) >= 1

    decision = hit(policy, "k")

    assert (decision.store_failed, decision.remaining) == (False, 998)


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
