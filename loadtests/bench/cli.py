"""Run the benchmark suite end to end and print the report.

Exit status: 0 when every case answered 2xx throughout; 1 when a case failed (non-2xx
responses, socket errors, a server that would not start); 2 for bad usage or when wrk
is missing and cannot be installed; 128 + signal when interrupted. Every server is
stopped and the private directory removed in all of these cases.
"""

from __future__ import annotations

import contextlib
import json
import signal
import sys
import tempfile
from collections.abc import Sequence
from pathlib import Path
from types import FrameType

from deploy.local.processes import ServerError
from loadtests.bench.cases import FLOOR, Case, select_cases
from loadtests.bench.errors import BenchError
from loadtests.bench.options import BenchOptions, parse_options
from loadtests.bench.report import as_json, case_line, header, name_width, peer_lines
from loadtests.bench.runner import CaseResult, measure, prepare_case, start_sites
from loadtests.bench.sections import SECTIONS
from loadtests.bench.wrk import WrkSettings, find_wrk


def main(argv: Sequence[str] | None = None) -> int:
    """Run the selected cases and print one line each; return the exit status."""
    options = parse_options(argv, sections=list(SECTIONS))
    if options.section in SECTIONS:
        return _run_sections([options.section], options)
    try:
        cases = select_cases(options.only)
        wrk = find_wrk()
    except (ValueError, ServerError) as exc:
        print(f"bench: {exc}", file=sys.stderr)
        return 2
    settings = WrkSettings(threads=options.threads, connections=options.connections)
    signal.signal(signal.SIGTERM, _raise_terminated)
    print("\n".join(header(options, settings)), flush=True)
    try:
        results = _run(cases, options, settings, wrk)
    except (BenchError, ServerError) as exc:
        print(f"bench: FAILED: {exc}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print("bench: interrupted; servers stopped", file=sys.stderr)
        return 128 + signal.SIGINT
    except Terminated:
        print("bench: terminated; servers stopped", file=sys.stderr)
        return 128 + signal.SIGTERM
    status = _report(results, options, settings)
    if options.section is None and not options.only:
        status = max(status, _run_sections(list(SECTIONS), options))
    return status


def _run_sections(names: list[str], options: BenchOptions) -> int:
    """Run the named printed sections; return 1 if any failed, else 0."""
    status = 0
    for name in names:
        try:
            status = max(status, SECTIONS[name](options))
        except (BenchError, ServerError) as exc:
            print(f"bench: section {name} FAILED: {exc}", file=sys.stderr)
            status = 1
        except KeyboardInterrupt:
            print("bench: interrupted; servers stopped", file=sys.stderr)
            return 128 + signal.SIGINT
    return status


def _run(
    cases: list[Case], options: BenchOptions, settings: WrkSettings, wrk: str
) -> list[CaseResult]:
    with contextlib.ExitStack() as stack:
        workdir = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="highscale-bench-")))
        sites = start_sites(stack, [c.target for c in cases], options.workers, workdir, _progress)
        prepared = [prepare_case(case, sites[case.target]) for case in cases]
        return measure(
            prepared,
            wrk=wrk,
            settings=settings,
            duration=options.duration,
            rounds=options.rounds,
            warmup=options.warmup,
            progress=_progress,
        )


def _report(results: list[CaseResult], options: BenchOptions, settings: WrkSettings) -> int:
    floor_rps = next(r.requests_per_second for r in results if r.case is FLOOR)
    width = name_width(results)
    print()
    for result in results:
        print(case_line(result, floor_rps, width))
    compared = peer_lines(results)
    if compared:
        print()
        print("against the peer, same run (both on deploy/gunicorn.conf.py, recycling off):")
        print("\n".join(compared))
    if options.json_path:
        payload = as_json(options, settings, results, floor_rps)
        options.json_path.write_text(json.dumps(payload, indent=2) + "\n")
    failed = [r.case.name for r in results if r.problems()]
    if failed:
        print(f"bench: FAILED: {', '.join(failed)} (see the lines above)", file=sys.stderr)
        return 1
    return 0


def _progress(message: str) -> None:
    print(f"  {message}", file=sys.stderr, flush=True)


class Terminated(BaseException):
    """SIGTERM arrived; like KeyboardInterrupt, it unwinds through every cleanup."""


def _raise_terminated(signum: int, frame: FrameType | None) -> None:
    raise Terminated
