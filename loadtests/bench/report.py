"""Print the results as aligned lines, and write them as JSON."""

from __future__ import annotations

import os
import platform
from pathlib import Path
from typing import Any

from loadtests.bench.options import BenchOptions
from loadtests.bench.runner import CaseResult
from loadtests.bench.wrk import WrkSettings


def cpu_count() -> int:
    """Return the CPUs this process may run on."""
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1


def cpu_model() -> str:
    """Return the CPU's model name, or the machine type when it is not known."""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.partition(":")[2].strip()
    except OSError:
        pass
    return platform.machine() or "unknown CPU"


def header(options: BenchOptions, settings: WrkSettings) -> list[str]:
    """Return the lines that say where and how the numbers were measured."""
    warmup = f"{options.warmup} s warm-up per case" if options.warmup else "no warm-up"
    return [
        f"machine: {cpu_count()} CPUs ({cpu_model()}), {platform.system()}, "
        f"Python {platform.python_version()}",
        f"server:  gunicorn sync -w {options.workers}, access log off, one server per target",
        f"load:    wrk {settings.describe()}, {_plural(options.rounds, 'round')} x "
        f"{options.duration} s (order reversed every other round), {warmup}",
        "ratio:   case req/s / floor req/s in this run; req/s, p50, p99 are means of rounds",
    ]


def _plural(count: int, noun: str) -> str:
    return f"{count} {noun}" if count == 1 else f"{count} {noun}s"


def name_width(results: list[CaseResult]) -> int:
    """Return the column width that fits every case name."""
    return max(len(r.case.name) for r in results)


def case_line(result: CaseResult, floor_rps: float, width: int) -> str:
    """Return one aligned report line; a failed case says why at its end."""
    line = (
        f"{result.case.name:<{width}}  {result.requests_per_second:7.0f} req/s  "
        f"p50 {result.p50_ms:5.1f} ms  p99 {result.p99_ms:5.1f} ms  "
        f"ratio {ratio(result, floor_rps):.2f}"
    )
    problems = result.problems()
    if problems:
        line += "  FAILED: " + "; ".join(problems)
    return line


def peer_ratios(results: list[CaseResult]) -> dict[str, float]:
    """Return, by case name, the case's req/s over its peer's, for cases whose peer ran."""
    by_name = {r.case.name: r for r in results}
    ratios = {}
    for result in results:
        peer = by_name.get(result.case.peer or "")
        if peer is not None and peer.requests_per_second:
            ratios[result.case.name] = round(
                result.requests_per_second / peer.requests_per_second, 2
            )
    return ratios


def peer_lines(results: list[CaseResult]) -> list[str]:
    """Return one line per case compared with its peer: the ratio and its goal."""
    goals = {r.case.name: r.case.peer_goal or 0.0 for r in results}
    lines = []
    for name, value in peer_ratios(results).items():
        verdict = "met" if value >= goals[name] else "MISSED"
        lines.append(f"  {name}: {value:.2f} x its peer (goal >= {goals[name]:.2f}: {verdict})")
    return lines


def ratio(result: CaseResult, floor_rps: float) -> float:
    """Return the case's req/s over the floor's, rounded as it is printed."""
    return round(result.requests_per_second / floor_rps, 2) if floor_rps else 0.0


def as_json(
    options: BenchOptions, settings: WrkSettings, results: list[CaseResult], floor_rps: float
) -> dict[str, Any]:
    """Return the run's settings and results as plain data."""
    against_peer = peer_ratios(results)
    return {
        "machine": {"cpu_count": cpu_count(), "cpu_model": cpu_model()},
        "settings": {
            "gunicorn_workers": options.workers,
            "wrk_threads": settings.threads,
            "wrk_connections": settings.connections,
            "duration_seconds": options.duration,
            "rounds": options.rounds,
            "warmup_seconds": options.warmup,
        },
        "cases": [
            {
                "name": r.case.name,
                "target": r.case.target,
                "url": r.url,
                "requests_per_second": round(r.requests_per_second, 1),
                "p50_ms": round(r.p50_ms, 3),
                "p99_ms": round(r.p99_ms, 3),
                "ratio": ratio(r, floor_rps),
                "peer": r.case.peer,
                "peer_ratio": against_peer.get(r.case.name),
                "peer_goal": r.case.peer_goal,
                "non_2xx": r.non_2xx,
                "socket_errors": r.socket_errors,
                "problems": r.problems(),
                "rounds": [
                    {
                        "requests_per_second": w.requests_per_second,
                        "p50_ms": w.p50_ms,
                        "p99_ms": w.p99_ms,
                        "requests": w.requests,
                    }
                    for w in r.rounds
                ],
            }
            for r in results
        ],
    }
