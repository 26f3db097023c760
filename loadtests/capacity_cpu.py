"""What this machine's CPU did in each step of ``make find-capacity``.

A step that breaks its thresholds says the service is out of capacity, not why. If the
cores were busy, it is CPU-bound and a bigger machine (or less work per request) moves
the limit. If they were mostly idle, requests were waiting on something (a lock, a pool,
a timeout) and a bigger machine would break at the same rate.

``python -m loadtests.capacity_cpu -- k6 run loadtests/k6/find_capacity.js`` runs the
command, reads every process's CPU ticks from ``/proc`` once a second meanwhile, and
afterwards adds to each step of ``CAPACITY_JSON`` the cores the machine and each server
kept busy during the step's hold (its ramp left out), then prints them with a verdict on
the step that broke. It does so only when ``BASE_URL`` is on this machine: the CPU of a
load generator's machine says nothing about a server elsewhere. The command's exit
status is passed on.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from loadtests.bench import cpu

DEFAULT_CAPACITY_JSON = "var/loadtest/capacity.json"
DEFAULT_BASE_URL = "http://127.0.0.1:8080"
LOCAL_HOSTS = frozenset({"127.0.0.1", "localhost", "::1"})
# The share of all cores above which a broken step counts as CPU-bound.
CPU_BOUND_SHARE = 0.85
LOAD_GENERATOR = "load generator"
# Every server of `make stack`, by its process name (``/proc/<pid>/stat``): the program's
# own for `.venv/bin/gunicorn` and `.venv/bin/celery`; one run as `python -m gunicorn`
# is named "python" and counts as "other".
SERVERS: Mapping[str, tuple[str, ...]] = {
    "gunicorn": ("gunicorn",),
    "Celery": ("celery",),
    "PostgreSQL": ("postgres",),
    "PgBouncer": ("pgbouncer",),
    "RabbitMQ": ("beam.smp", "erl_child_setup", "epmd"),
    "Redis": ("redis-server",),
    "nginx": ("nginx",),
}


@dataclass(frozen=True)
class Sample:
    """The machine's CPU ticks at one moment, on the wall clock (Unix ms)."""

    at_ms: float
    snapshot: cpu.Snapshot


def sample_until_exit(popen: subprocess.Popen[bytes], interval: float) -> list[Sample]:
    """Snapshot the CPU every ``interval`` seconds while ``popen`` runs.

    None is taken after it exits: an ended process's ticks are gone from ``/proc``, so
    the load generator's time would vanish from the last step. Ctrl-C reaches the
    command too (same process group): k6 then ends its run and writes its summary, so
    the readings go on until it has exited.
    """
    samples = [Sample(time.time() * 1000, cpu.snapshot())]
    while True:
        try:
            popen.wait(timeout=interval)
        except (subprocess.TimeoutExpired, KeyboardInterrupt):
            samples.append(Sample(time.time() * 1000, cpu.snapshot()))
            continue
        return samples


def groups_for(load_generator: int) -> dict[str, cpu.Group]:
    """Return the groups a step's CPU is split into: the load generator, then each server."""
    groups: dict[str, cpu.Group] = {LOAD_GENERATOR: cpu.process_tree(load_generator)}
    groups.update({name: cpu.named(*names) for name, names in SERVERS.items()})
    return groups


def step_windows(capacity: Mapping[str, Any]) -> list[tuple[float, float]]:
    """Return each step's hold as (start, end) in Unix ms, its ramp from the last left out."""
    start = float(capacity["scenario_start_ms"])
    length = float(capacity["step_seconds"]) * 1000
    ramp = float(capacity.get("ramp_seconds", 0)) * 1000
    return [
        (start + index * length + ramp, start + (index + 1) * length)
        for index in range(len(capacity["steps"]))
    ]


def cores_in(
    samples: Sequence[Sample], window: tuple[float, float], groups: Mapping[str, cpu.Group]
) -> dict[str, float] | None:
    """Return the cores busy on average in ``window``: the machine's and each group's.

    From the first sample at or after the window's start to the last at or before its
    end, so no second outside the window counts; None when fewer than a second lies
    between them (a step the run aborted at once).
    """
    start, end = window
    inside = [sample for sample in samples if start <= sample.at_ms <= end]
    if len(inside) < 2 or inside[-1].at_ms - inside[0].at_ms < 1000:
        return None
    first, last = inside[0], inside[-1]
    seconds = (last.at_ms - first.at_ms) / 1000
    spent = cpu.spent(first.snapshot, last.snapshot, groups)
    busy = (last.snapshot.busy_ticks - first.snapshot.busy_ticks) / cpu.CLOCK_TICKS_PER_SECOND
    result = {"machine": round(busy / seconds, 3)}
    result.update({name: round(value / seconds, 3) for name, value in spent.items()})
    return result


def add_cpu(
    capacity: dict[str, Any], samples: Sequence[Sample], groups: Mapping[str, cpu.Group]
) -> None:
    """Write each step's busy cores and the verdict on the step that broke into ``capacity``."""
    cores = os.cpu_count() or 1
    for step, window in zip(capacity["steps"], step_windows(capacity), strict=True):
        step["cpu_cores_busy"] = cores_in(samples, window, groups)
    capacity["cpu_cores"] = cores
    capacity["cpu_verdict"] = verdict(capacity, cores)


def verdict(capacity: Mapping[str, Any], cores: int) -> str:
    """Say what the step that broke ran out of: the cores, the rate limits, or a wait."""
    broken = next((step for step in capacity["steps"] if not step["held"]), None)
    if broken is None:
        return "no step broke: raise STEPS or STEP_RPS to find the limit"
    name = f"step {broken['step']}"
    if broken.get("rate_limited"):
        return (
            f"{name} broke on the rate limiter's 429s, not on capacity: lift the limits "
            "(RATELIMIT_OVERRIDES) and run again"
        )
    busy = broken.get("cpu_cores_busy")
    if busy is None:
        return f"{name} broke too soon to read its CPU"
    share = busy["machine"] / cores
    if share >= CPU_BOUND_SHARE:
        return (
            f"{name} broke with {share:.0%} of {cores} cores busy: CPU-bound; "
            "more cores or less CPU per request move the limit"
        )
    if broken.get("failed_rate", 0) >= capacity.get("thresholds", {}).get("max_failed_rate", 1):
        return (
            f"{name} broke on failed requests with {1 - share:.0%} of {cores} cores idle: "
            "see what failed in the k6 summary, not the machine"
        )
    return (
        f"{name} broke with {1 - share:.0%} of {cores} cores idle: requests "
        "waited on something (a lock, a pool, a timeout); find it before a bigger machine"
    )


def report(capacity: Mapping[str, Any]) -> str:
    """Return the lines that print each step's busy cores and the verdict."""
    lines = [f"CPU of this machine ({capacity['cpu_cores']} cores) in each step's hold:"]
    for step in capacity["steps"]:
        busy = step["cpu_cores_busy"]
        if busy is None:
            lines.append(f"  step {step['step']:2d}: too short to read")
            continue
        parts = [
            f"{name} {value:.2f}"
            for name, value in sorted(busy.items(), key=lambda item: -item[1])
            if name != "machine" and value >= 0.005
        ]
        lines.append(f"  step {step['step']:2d}: {busy['machine']:.2f} busy ({', '.join(parts)})")
    lines.append(f"  {capacity['cpu_verdict']}")
    return "\n".join(lines)


def is_local(base_url: str) -> bool:
    """Return whether ``base_url`` names this machine."""
    return (urlsplit(base_url).hostname or "") in LOCAL_HOSTS


def _seconds(text: str) -> float:
    value = float(text)
    if not value > 0:
        raise argparse.ArgumentTypeError(f"must be a number of seconds above 0, not {text}")
    return value


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command, read the CPU meanwhile, add it to the capacity file; return its status."""
    parser = argparse.ArgumentParser(prog="python -m loadtests.capacity_cpu", description=__doc__)
    parser.add_argument("--interval", type=_seconds, default=1.0, help="seconds between readings")
    parser.add_argument("command", nargs="+", help="the find-capacity run, after --")
    arguments = parser.parse_args(argv)
    capacity_path = Path(os.environ.get("CAPACITY_JSON", DEFAULT_CAPACITY_JSON))
    base_url = os.environ.get("BASE_URL", DEFAULT_BASE_URL)
    started = time.time()
    popen = subprocess.Popen(arguments.command)
    samples = sample_until_exit(popen, arguments.interval)
    status = popen.returncode
    if not is_local(base_url):
        print(f"CPU not read: {base_url} is not on this machine")
        return status
    try:
        written = capacity_path.stat().st_mtime
        capacity = json.loads(capacity_path.read_text())
    except (OSError, ValueError) as error:
        print(f"CPU not added: {capacity_path}: {error}", file=sys.stderr)
        return status
    # A run that died before its summary leaves an earlier run's file, of other seconds.
    if written < started or capacity.get("scenario_start_ms") is None:
        print(f"CPU not added: {capacity_path} holds no step of this run", file=sys.stderr)
        return status
    add_cpu(capacity, samples, groups_for(popen.pid))
    capacity_path.write_text(json.dumps(capacity, indent=2) + "\n")
    print(report(capacity))
    return status


if __name__ == "__main__":
    sys.exit(main())
