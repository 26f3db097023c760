"""The command line of ``python -m loadtests.bench`` (``make bench BENCH_ARGS=...``)."""

from __future__ import annotations

import argparse
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path


@dataclass(frozen=True)
class BenchOptions:
    """How long, how hard and what to measure."""

    duration: int
    rounds: int
    connections: int
    workers: int
    warmup: int
    only: str | None
    json_path: Path | None
    # None: the wrk cases, then every section (sections are skipped under --only).
    section: str | None = None

    @property
    def threads(self) -> int:
        """Return wrk's thread count: two, never more than there are connections."""
        return min(2, self.connections)


def _count(minimum: int) -> Callable[[str], int]:
    """Return an argparse type that accepts whole numbers of at least ``minimum``."""

    def parse(raw: str) -> int:
        try:
            value = int(raw)
        except ValueError:
            raise argparse.ArgumentTypeError(f"{raw!r} is not a whole number") from None
        if value < minimum:
            raise argparse.ArgumentTypeError(f"must be at least {minimum}, got {value}")
        return value

    return parse


def parse_options(argv: Sequence[str] | None = None, sections: Sequence[str] = ()) -> BenchOptions:
    """Parse the command line, ``sections`` being the names ``--section`` accepts besides
    ``cases``; exit 2 with a usage message on bad input.
    """
    parser = argparse.ArgumentParser(
        prog="python -m loadtests.bench",
        description="Throughput of each benchmark case as a ratio to a bare WSGI floor "
        "measured in the same run (gunicorn sync workers, driven by wrk).",
    )
    parser.add_argument(
        "--duration",
        type=_count(1),
        default=5,
        metavar="SECONDS",
        help="length of each measured wrk run (default 5)",
    )
    parser.add_argument(
        "--rounds",
        type=_count(1),
        default=2,
        metavar="N",
        help="rounds over all cases, alternating order (default 2)",
    )
    parser.add_argument(
        "--connections",
        type=_count(1),
        default=32,
        metavar="N",
        help="connections wrk keeps open (default 32)",
    )
    parser.add_argument(
        "--workers",
        type=_count(1),
        default=2,
        metavar="N",
        help="gunicorn sync workers per target (default 2)",
    )
    parser.add_argument(
        "--warmup",
        type=_count(0),
        default=1,
        metavar="SECONDS",
        help="unmeasured run per case before the rounds (default 1)",
    )
    parser.add_argument(
        "--only",
        metavar="NAME",
        help="run only cases whose name contains NAME, with the peers they are compared "
        "with (the floor always runs)",
    )
    parser.add_argument(
        "--json",
        type=Path,
        dest="json_path",
        metavar="PATH",
        help="also write the results as JSON to PATH",
    )
    parser.add_argument(
        "--section",
        choices=["cases", *sections],
        help="run only the wrk cases, or only one printed section (default: all); sections "
        "that run wrk take --duration, --rounds, --connections, --workers and --warmup",
    )
    args = parser.parse_args(argv)
    return BenchOptions(
        duration=args.duration,
        rounds=args.rounds,
        connections=args.connections,
        workers=args.workers,
        warmup=args.warmup,
        only=args.only,
        json_path=args.json_path,
        section=args.section,
    )
