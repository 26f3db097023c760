"""``loadtests/capacity_cpu.py``: the cores each find-capacity step kept busy, and the verdict.

The run is a real child process that idles through one step and spins through the next,
timed like find_capacity.js, with the CPU read from ``/proc`` as ``make find-capacity``
reads it.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path
from typing import Any

from loadtests.capacity_cpu import verdict

ROOT = Path(__file__).resolve().parents[1]
STEP_SECONDS = 2.5

# A stand-in for k6: step 1 sleeps, step 2 spins one core until the run aborts, 0.5 s
# before the step's planned end; then it writes the capacity file find_capacity.js would
# write (step 2 broke) and exits 99, as k6 does on a break.
FAKE_FIND_CAPACITY = textwrap.dedent(
    f"""
    import json, os, sys, time
    start = time.time() * 1000
    time.sleep({STEP_SECONDS})
    while time.time() * 1000 < start + (2 * {STEP_SECONDS} - 0.5) * 1000:
        pass
    capacity = {{
        "scenario_start_ms": start, "step_seconds": {STEP_SECONDS}, "ramp_seconds": 0,
        "steps": [{{"step": 1, "held": True}}, {{"step": 2, "held": False}}],
    }}
    with open(os.environ["CAPACITY_JSON"], "w") as file:
        json.dump(capacity, file)
    sys.exit(99)
    """
)


def run_capacity_cpu(
    tmp_path: Path, base_url: str, script: str = FAKE_FIND_CAPACITY, interval: str = "0.2"
) -> subprocess.CompletedProcess[str]:
    command = [
        sys.executable, "-m", "loadtests.capacity_cpu", "--interval", interval, "--",
        sys.executable, "-c", script,
    ]  # fmt: skip
    env = {**os.environ, "CAPACITY_JSON": str(tmp_path / "capacity.json"), "BASE_URL": base_url}
    return subprocess.run(
        command, cwd=ROOT, env=env, capture_output=True, text=True, timeout=60, check=False
    )


def test_each_step_gets_the_cores_the_load_kept_busy_and_the_status_passes_on(tmp_path: Path):
    result = run_capacity_cpu(tmp_path, "http://127.0.0.1:8080")

    assert result.returncode == 99, result.stdout + result.stderr
    capacity = json.loads((tmp_path / "capacity.json").read_text())
    idle, spinning = (step["cpu_cores_busy"] for step in capacity["steps"])
    # The load generator's own ticks: near zero asleep, near one core spinning, even in
    # the step it ended in (no reading after it is gone from /proc).
    assert idle["load generator"] <= 0.2
    assert spinning["load generator"] >= 0.5
    assert spinning["machine"] >= spinning["load generator"] - 0.05
    assert capacity["cpu_cores"] == os.cpu_count()
    assert capacity["cpu_verdict"].startswith("step 2 broke with ")
    assert "CPU of this machine" in result.stdout
    assert capacity["cpu_verdict"] in result.stdout


def test_a_server_elsewhere_gets_no_cpu_reading_and_its_file_is_left_alone(tmp_path: Path):
    result = run_capacity_cpu(tmp_path, "http://capacity.example:8080")

    assert result.returncode == 99, result.stdout + result.stderr
    capacity = json.loads((tmp_path / "capacity.json").read_text())
    assert "cpu_verdict" not in capacity
    assert all("cpu_cores_busy" not in step for step in capacity["steps"])
    assert "CPU not read: http://capacity.example:8080 is not on this machine" in result.stdout


def test_a_file_left_by_an_earlier_run_is_not_given_this_runs_cpu(tmp_path: Path):
    earlier = json.dumps({"scenario_start_ms": 1, "step_seconds": 1, "steps": []})
    (tmp_path / "capacity.json").write_text(earlier)

    # A load generator that dies before it writes its summary.
    result = run_capacity_cpu(tmp_path, "http://127.0.0.1:8080", script="raise SystemExit(107)")

    assert result.returncode == 107
    assert (tmp_path / "capacity.json").read_text() == earlier
    assert "holds no step of this run" in result.stderr


def test_an_interval_of_no_seconds_is_refused_before_anything_runs(tmp_path: Path):
    result = run_capacity_cpu(tmp_path, "http://127.0.0.1:8080", interval="0")

    assert result.returncode == 2
    assert "--interval: must be a number of seconds above 0, not 0" in result.stderr
    assert not (tmp_path / "capacity.json").exists()


def broke_with(
    machine_cores: float | None, *, failed_rate: float = 0.0, rate_limited: int = 0
) -> dict[str, Any]:
    busy = None if machine_cores is None else {"machine": machine_cores}
    return {
        "thresholds": {"p95_ms": 200, "max_failed_rate": 0.01},
        "steps": [
            {"step": 1, "held": True, "cpu_cores_busy": {"machine": 0.5}},
            {
                "step": 2, "held": False, "cpu_cores_busy": busy,
                "failed_rate": failed_rate, "rate_limited": rate_limited,
            },
        ],
    }  # fmt: skip


def test_a_break_with_busy_cores_is_cpu_bound():
    assert verdict(broke_with(1.9), cores=2) == (
        "step 2 broke with 95% of 2 cores busy: CPU-bound; "
        "more cores or less CPU per request move the limit"
    )


def test_a_break_with_idle_cores_points_at_a_wait_not_the_machine():
    assert verdict(broke_with(0.5), cores=2) == (
        "step 2 broke with 75% of 2 cores idle: requests waited on something "
        "(a lock, a pool, a timeout); find it before a bigger machine"
    )


def test_a_step_too_short_to_read_and_a_run_that_never_broke_say_so():
    assert verdict(broke_with(None), cores=2) == "step 2 broke too soon to read its CPU"
    held = {"steps": [{"step": 1, "held": True, "cpu_cores_busy": {"machine": 1.0}}]}
    assert verdict(held, cores=2) == "no step broke: raise STEPS or STEP_RPS to find the limit"


def test_a_break_on_429s_names_the_rate_limits_whatever_the_cores_did():
    expected = (
        "step 2 broke on the rate limiter's 429s, not on capacity: lift the limits "
        "(RATELIMIT_OVERRIDES) and run again"
    )
    assert verdict(broke_with(0.5, failed_rate=0.2, rate_limited=40), cores=2) == expected
    assert verdict(broke_with(1.9, failed_rate=0.2, rate_limited=40), cores=2) == expected


def test_a_break_on_failures_with_idle_cores_points_at_the_failures():
    assert verdict(broke_with(0.5, failed_rate=0.05), cores=2) == (
        "step 2 broke on failed requests with 75% of 2 cores idle: "
        "see what failed in the k6 summary, not the machine"
    )
