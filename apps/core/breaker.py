"""The one circuit breaker: after a dependency fails, stop calling it for a while.

The rate limiter, the tiered cache, the outbox relay and the replica health probe each
guard a dependency with one ``CircuitBreaker``. Reading its state takes no lock, so a
check on every request costs one clock read; only a change of state takes the lock.

pybreaker was considered: its ``call`` holds one lock for the whole wrapped call, so a
thread-pool worker's concurrent calls would queue behind a single slow one.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager


class CircuitOpen(Exception):
    """The dependency failed moments ago; it was not called."""

    def __init__(self, name: str, retry_in: float) -> None:
        super().__init__(f"{name} failed recently; not retried for {retry_in:.2f} s")
        self.name = name
        self.retry_in = retry_in


class CircuitBreaker:
    """Open for ``reset_seconds`` once ``failures`` calls in a row have failed.

    While open, ``allow()`` is false and ``guard()`` raises ``CircuitOpen`` without
    calling anything. Once the time is up every caller may try again; one more failure
    opens it again, a success closes it.
    """

    def __init__(
        self,
        name: str,
        *,
        reset_seconds: float,
        failures: int = 1,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        if reset_seconds < 0 or failures < 1:
            raise ValueError("reset_seconds must be >= 0 and failures >= 1")
        self.name = name
        self.reset_seconds = reset_seconds
        self.failures = failures
        self._clock = clock
        self._lock = threading.Lock()
        self._failed_in_row = 0
        self._open_until = 0.0

    @property
    def is_open(self) -> bool:
        """Return whether calls are refused right now."""
        return self._clock() < self._open_until

    @property
    def retry_in(self) -> float:
        """Return the seconds until calls are allowed again (0 when closed)."""
        return max(0.0, self._open_until - self._clock())

    def allow(self) -> bool:
        """Return whether the dependency may be called now."""
        return not self.is_open

    def succeeded(self) -> None:
        """Record a call that worked: the breaker closes."""
        if self._failed_in_row or self._open_until:
            with self._lock:
                self._failed_in_row = 0
                self._open_until = 0.0

    def failed(self) -> None:
        """Record a call that failed; enough in a row open the breaker."""
        with self._lock:
            self._failed_in_row += 1
            if self._failed_in_row >= self.failures:
                self._open_until = self._clock() + self.reset_seconds

    def reset(self) -> None:
        """Close the breaker and forget past failures (tests, a forked child)."""
        with self._lock:
            self._failed_in_row = 0
            self._open_until = 0.0

    @contextmanager
    def guard(self, *counted: type[BaseException]) -> Iterator[None]:
        """Run the block unless the breaker is open; record how it went.

        Raise ``CircuitOpen`` without running the block while open. An exception of a
        ``counted`` type (default: any ``Exception``) records a failure and propagates;
        other exceptions propagate without counting; a block that completes closes it.
        """
        errors: tuple[type[BaseException], ...] = counted or (Exception,)
        retry_in = self.retry_in
        if retry_in > 0:
            raise CircuitOpen(self.name, retry_in)
        try:
            yield
        except errors:
            self.failed()
            raise
        self.succeeded()
