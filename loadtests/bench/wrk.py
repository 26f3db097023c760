"""Run wrk against one URL and parse what it prints."""

from __future__ import annotations

import re
import subprocess
from collections.abc import Mapping
from dataclasses import dataclass

from deploy.local.binaries import find_binary
from loadtests.bench.errors import BenchError

# A run may lose a handful of connections as wrk stops mid-request; more than this
# share of the requests is a server problem, not noise.
SOCKET_ERROR_TOLERANCE = 0.001

_UNIT_MS = {"us": 0.001, "ms": 1.0, "s": 1000.0, "m": 60_000.0, "h": 3_600_000.0}
_TIME = r"([0-9.]+)(us|ms|s|m|h)"
_PERCENTILE_RE = re.compile(rf"^\s*(50|99)(?:\.0+)?%\s+{_TIME}\s*$", re.MULTILINE)
_RPS_RE = re.compile(r"^Requests/sec:\s+([0-9.]+)", re.MULTILINE)
_REQUESTS_RE = re.compile(r"^\s*(\d+) requests in ", re.MULTILINE)
_NON_2XX_RE = re.compile(r"Non-2xx or 3xx responses:\s+(\d+)")
_SOCKET_RE = re.compile(r"Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)")


def find_wrk() -> str:
    """Return the wrk binary, installing Debian's ``wrk`` as root, else raise ServerError."""
    return find_binary("wrk")


@dataclass(frozen=True)
class WrkSettings:
    """How hard wrk pushes: threads, open connections."""

    threads: int
    connections: int

    def describe(self) -> str:
        """Return the settings as wrk options, e.g. ``-t2 -c32 --latency``."""
        return f"-t{self.threads} -c{self.connections} --latency"


@dataclass(frozen=True)
class WrkResult:
    """What one wrk run measured."""

    requests_per_second: float
    p50_ms: float
    p99_ms: float
    requests: int
    non_2xx: int
    socket_errors: Mapping[str, int]

    def problems(self) -> list[str]:
        """Return why this run cannot be trusted; empty when it can."""
        found = []
        if self.non_2xx:
            found.append(f"{self.non_2xx} non-2xx responses")
        errors = sum(self.socket_errors.values())
        if errors > max(1, self.requests * SOCKET_ERROR_TOLERANCE):
            detail = ", ".join(f"{k} {v}" for k, v in self.socket_errors.items() if v)
            found.append(f"{errors} socket errors ({detail})")
        if self.requests == 0:
            found.append("no request completed")
        return found


def run_wrk(
    binary: str, url: str, headers: Mapping[str, str], settings: WrkSettings, seconds: int
) -> WrkResult:
    """Drive ``url`` for ``seconds`` and return the parsed result."""
    command = [
        binary,
        f"-t{settings.threads}",
        f"-c{settings.connections}",
        f"-d{seconds}s",
        "--latency",
    ]
    for name, value in headers.items():
        command += ["-H", f"{name}: {value}"]
    command.append(url)
    result = subprocess.run(command, capture_output=True, text=True, check=False)
    if result.returncode != 0:
        raise BenchError(f"wrk failed on {url} ({result.returncode}):\n{result.stderr}")
    return parse_wrk(result.stdout)


def parse_wrk(output: str) -> WrkResult:
    """Parse wrk's ``--latency`` report; raise BenchError when a field is missing."""
    rps = _RPS_RE.search(output)
    requests = _REQUESTS_RE.search(output)
    percentiles = {m[1]: float(m[2]) * _UNIT_MS[m[3]] for m in _PERCENTILE_RE.finditer(output)}
    if rps is None or requests is None or set(percentiles) != {"50", "99"}:
        raise BenchError(f"cannot parse wrk output:\n{output}")
    non_2xx = _NON_2XX_RE.search(output)
    socket = _SOCKET_RE.search(output)
    counts = [int(n) for n in socket.groups()] if socket else [0, 0, 0, 0]
    return WrkResult(
        requests_per_second=float(rps[1]),
        p50_ms=percentiles["50"],
        p99_ms=percentiles["99"],
        requests=int(requests[1]),
        non_2xx=int(non_2xx[1]) if non_2xx else 0,
        socket_errors=dict(zip(("connect", "read", "write", "timeout"), counts, strict=True)),
    )
