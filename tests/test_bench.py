"""The ``make bench`` harness runs end to end and reports each case against the floor."""

from __future__ import annotations

import json
import re
import signal
import subprocess
import sys
from pathlib import Path
from urllib.parse import urlsplit

from deploy.local.processes import port_open

BASE_DIR = Path(__file__).resolve().parent.parent
FLOOR = "bare WSGI (floor)"
HEALTHZ = "django JSON view (/healthz, full middleware)"
LINE_RE = re.compile(
    r"^(?P<name>\S.*?)\s+(?P<rps>\d+) req/s\s+p50\s+(?P<p50>[\d.]+) ms\s+"
    r"p99\s+(?P<p99>[\d.]+) ms\s+ratio (?P<ratio>\d+\.\d\d)$",
    re.MULTILINE,
)


def run_bench(*args: str, timeout: float = 90) -> subprocess.CompletedProcess[str]:
    """Run ``python -m loadtests.bench``; on timeout stop it as Ctrl-C would, then fail."""
    command = [sys.executable, "-m", "loadtests.bench", *args]
    process = subprocess.Popen(
        command, cwd=BASE_DIR, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
    )
    try:
        stdout, stderr = process.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        process.send_signal(signal.SIGTERM)
        stdout, stderr = process.communicate(timeout=30)
        raise AssertionError(f"bench did not finish in {timeout} s:\n{stdout}\n{stderr}") from None
    return subprocess.CompletedProcess(command, process.returncode, stdout, stderr)


def test_bench_prints_each_case_as_a_ratio_to_the_floor_and_stops_its_servers(tmp_path):
    json_path = tmp_path / "bench.json"

    completed = run_bench(
        "--duration", "1", "--rounds", "1", "--only", "django JSON view", "--json", str(json_path)
    )

    assert completed.returncode == 0, completed.stdout + completed.stderr
    lines = {m["name"]: m for m in LINE_RE.finditer(completed.stdout)}
    assert list(lines) == [FLOOR, HEALTHZ], completed.stdout
    assert lines[FLOOR]["ratio"] == "1.00"
    assert float(lines[HEALTHZ]["ratio"]) > 0
    results = json.loads(json_path.read_text())
    cases = {case["name"]: case for case in results["cases"]}
    assert list(cases) == [FLOOR, HEALTHZ]
    assert cases[FLOOR]["ratio"] == 1.0
    assert cases[HEALTHZ]["ratio"] == float(lines[HEALTHZ]["ratio"])
    for case in cases.values():
        assert case["requests_per_second"] > 0
        assert case["non_2xx"] == 0
        assert case["problems"] == []
        assert len(case["rounds"]) == 1
        url = urlsplit(case["url"])
        assert not port_open(url.hostname or "", url.port or 80), f"{case['url']} still answers"


def test_bench_registry_starts_with_the_floor_then_the_plain_django_view():
    from loadtests.bench.cases import CASES

    assert [case.name for case in CASES[:2]] == [FLOOR, HEALTHZ]
