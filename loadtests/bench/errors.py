"""The one error type the benchmark harness raises."""

from __future__ import annotations


class BenchError(RuntimeError):
    """A server, a setup step or a measurement failed; the run cannot be trusted."""
