"""Printed sections of the bench beyond the wrk cases: micro-benchmarks and the like.

Each section is a function that takes the command line's options, prints its own lines,
every figure next to its floor or peer measured in the same run, and returns 0, or 1
when it could not measure. ``make bench`` runs them all after the cases;
``--section NAME`` runs one alone.
"""

from __future__ import annotations

from collections.abc import Callable

from loadtests.bench import edge, events, ha_postgres, metrics_recycling, ratelimit, replicas
from loadtests.bench.options import BenchOptions

SECTIONS: dict[str, Callable[[BenchOptions], int]] = {
    "replicas": lambda options: replicas.router_section(),
    "ratelimit": ratelimit.section,
    "metrics": lambda options: metrics_recycling.run_section(),
    "events": events.section,
    "edge": edge.section,
    "ha-postgres": ha_postgres.section,
}
