import pytest

from apps.core.breaker import CircuitBreaker, CircuitOpen


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def test_one_failure_opens_the_breaker_for_its_reset_time():
    clock = Clock()
    breaker = CircuitBreaker("redis", reset_seconds=2, clock=clock)
    assert breaker.allow()
    breaker.failed()
    assert not breaker.allow()
    assert breaker.retry_in == 2
    clock.now += 1.999
    assert breaker.is_open
    clock.now += 0.001
    assert breaker.allow()


def test_it_opens_only_after_the_configured_failures_in_a_row():
    breaker = CircuitBreaker("db", reset_seconds=5, failures=3, clock=Clock())
    breaker.failed()
    breaker.failed()
    breaker.succeeded()
    breaker.failed()
    breaker.failed()
    assert breaker.allow()
    breaker.failed()
    assert not breaker.allow()


def test_a_success_after_the_reset_time_closes_it_and_a_failure_reopens_it():
    clock = Clock()
    breaker = CircuitBreaker("broker", reset_seconds=1, clock=clock)
    breaker.failed()
    clock.now += 1
    breaker.succeeded()
    assert breaker.retry_in == 0
    breaker.failed()
    assert breaker.retry_in == 1


def test_guard_refuses_while_open_without_running_the_block():
    clock = Clock()
    breaker = CircuitBreaker("redis", reset_seconds=1, clock=clock)
    with pytest.raises(ConnectionError), breaker.guard(ConnectionError):
        raise ConnectionError("refused")
    ran = []
    with pytest.raises(CircuitOpen) as refused, breaker.guard():
        ran.append(True)
    assert ran == []
    assert refused.value.name == "redis"
    assert refused.value.retry_in == 1


def test_guard_counts_only_the_named_errors():
    breaker = CircuitBreaker("redis", reset_seconds=1, clock=Clock())
    with pytest.raises(KeyError), breaker.guard(ConnectionError):
        raise KeyError("not a dependency failure")
    assert breaker.allow()
    with breaker.guard(ConnectionError):
        pass
    assert breaker.allow()


def test_negative_reset_or_zero_failures_are_refused():
    with pytest.raises(ValueError, match="reset_seconds"):
        CircuitBreaker("x", reset_seconds=-1)
    with pytest.raises(ValueError, match="failures"):
        CircuitBreaker("x", reset_seconds=1, failures=0)
