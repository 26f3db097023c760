"""Measure the cases: a check request, a warm-up, then interleaved rounds.

Round 1 runs the cases in registry order, round 2 in reverse, and so on, so that a
drift in the machine's speed during the run (another tenant, thermal limits) falls on
every case alike instead of on whichever ran last.
"""

from __future__ import annotations

import contextlib
import http.client
import statistics
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import urlsplit

from loadtests.bench.cases import Case
from loadtests.bench.errors import BenchError
from loadtests.bench.gunicorn import start_gunicorn
from loadtests.bench.site import GUNICORN_CONFIG, Site, base_environment
from loadtests.bench.targets import TARGETS
from loadtests.bench.wrk import WrkResult, WrkSettings, run_wrk


@dataclass(frozen=True)
class PreparedCase:
    """A case after its setup: the full URL and the headers to send."""

    case: Case
    url: str
    headers: Mapping[str, str]


@dataclass
class CaseResult:
    """Every measured round of one case."""

    case: Case
    url: str
    rounds: list[WrkResult] = field(default_factory=list)

    @property
    def requests_per_second(self) -> float:
        """Return the mean req/s over the rounds."""
        return statistics.fmean(r.requests_per_second for r in self.rounds)

    @property
    def p50_ms(self) -> float:
        """Return the mean median latency over the rounds, in ms."""
        return statistics.fmean(r.p50_ms for r in self.rounds)

    @property
    def p99_ms(self) -> float:
        """Return the mean 99th-percentile latency over the rounds, in ms."""
        return statistics.fmean(r.p99_ms for r in self.rounds)

    @property
    def non_2xx(self) -> int:
        """Return the non-2xx responses summed over the rounds."""
        return sum(r.non_2xx for r in self.rounds)

    @property
    def socket_errors(self) -> dict[str, int]:
        """Return wrk's socket error counts summed over the rounds."""
        totals: dict[str, int] = {}
        for result in self.rounds:
            for kind, count in result.socket_errors.items():
                totals[kind] = totals.get(kind, 0) + count
        return totals

    def problems(self) -> list[str]:
        """Return why this case's numbers cannot be trusted; empty when they can."""
        return [
            f"round {number}: {problem}"
            for number, result in enumerate(self.rounds, start=1)
            for problem in result.problems()
        ]


def prepare_case(case: Case, site: Site) -> PreparedCase:
    """Run the case's setup, if any, against its started target."""
    request = case.setup(site, case.request) if case.setup else case.request
    return PreparedCase(case, site.base_url + request.path, dict(request.headers))


def start_sites(
    stack: contextlib.ExitStack,
    names: list[str],
    workers: int,
    workdir: Path,
    progress: Callable[[str], None],
) -> dict[str, Site]:
    """Start one server per target (stopped when ``stack`` closes); wait until all answer."""
    sites: dict[str, Site] = {}
    servers = []
    for name in dict.fromkeys(names):
        target = TARGETS[name]
        home = workdir / name
        home.mkdir()
        progress(f"starting    {name} ({target.app})")
        env = base_environment() | target.prepare(home)
        server = start_gunicorn(
            target=name,
            app=target.app,
            workers=workers,
            env=env,
            workdir=home,
            config=GUNICORN_CONFIG if target.deploy_config else None,
        )
        stack.callback(server.stop)
        servers.append((server, target))
        sites[name] = Site(name, server.base_url, env, home)
    for server, target in servers:
        server.wait_ready(target.ready_path)
    return sites


def check_answers_2xx(prepared: PreparedCase) -> None:
    """Send the case's request once; raise BenchError unless it answers 2xx.

    wrk counts only 4xx and 5xx as errors, so a redirect would otherwise be measured
    as if it were the page.
    """
    url = urlsplit(prepared.url)
    connection = http.client.HTTPConnection(url.hostname or "", url.port, timeout=10)
    try:
        connection.request("GET", url.path or "/", headers=dict(prepared.headers))
        response = connection.getresponse()
        status, body = response.status, response.read(300)
    except OSError as exc:
        raise BenchError(f"{prepared.case.name}: GET {prepared.url} failed: {exc}") from exc
    finally:
        connection.close()
    if not 200 <= status < 300:
        raise BenchError(
            f"{prepared.case.name}: GET {prepared.url} answered {status}, expected 2xx: "
            f"{body.decode(errors='replace')}"
        )


def measure(
    cases: list[PreparedCase],
    *,
    wrk: str,
    settings: WrkSettings,
    duration: int,
    rounds: int,
    warmup: int,
    progress: Callable[[str], None],
) -> list[CaseResult]:
    """Check, warm up, then measure every case in alternating-order rounds."""
    results = {id(p): CaseResult(p.case, p.url) for p in cases}
    for prepared in cases:
        check_answers_2xx(prepared)
        if warmup:
            progress(f"warm-up     {prepared.case.name}")
            run_wrk(wrk, prepared.url, prepared.headers, settings, warmup)
    for number in range(1, rounds + 1):
        order = cases if number % 2 else list(reversed(cases))
        for prepared in order:
            result = run_wrk(wrk, prepared.url, prepared.headers, settings, duration)
            results[id(prepared)].rounds.append(result)
            progress(
                f"round {number}/{rounds}   {prepared.case.name}: "
                f"{result.requests_per_second:.0f} req/s"
            )
    return [results[id(p)] for p in cases]
