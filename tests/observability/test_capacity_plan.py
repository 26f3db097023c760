"""``manage.py capacity_plan``: the printed plan and its refusals."""

from __future__ import annotations

import json
from io import StringIO
from pathlib import Path

import pytest
from django.core.management import CommandError, call_command


def run(*args: str) -> str:
    out = StringIO()
    call_command("capacity_plan", *args, stdout=out)
    return out.getvalue()


def test_prints_the_worked_example_required_capacity() -> None:
    output = run("--peak-rps", "1000", "--growth", "2", "--safety", "1.5")

    assert output.splitlines() == [
        "Required capacity: 1,000 RPS × 2 growth × 1.5 safety = 3,000 RPS",
        "Pods needed: unknown; pass --per-pod-rps or --from-k6 with a measured figure.",
    ]


def test_prints_pods_and_hpa_bounds_from_a_per_pod_rps() -> None:
    output = run("--peak-rps", "1000", "--growth", "2", "--safety", "1.5", "--per-pod-rps", "500")

    assert output.splitlines()[1:] == [
        "Per-pod capacity: 500 RPS (--per-pod-rps)",
        "Pods needed: 6",
        "HPA: minReplicas 3 (today's peak × safety, at least 2), maxReplicas 6 (required capacity)",
    ]


def test_reads_the_per_pod_rps_from_a_k6_summary(tmp_path: Path) -> None:
    summary = tmp_path / "summary.json"
    summary.write_text(json.dumps({"metrics": {"http_reqs": {"values": {"rate": 250.0}}}}))

    output = run(
        "--peak-rps", "1000", "--growth", "2", "--safety", "1.5", "--from-k6", str(summary)
    )

    assert f"Per-pod capacity: 250 RPS (measured by k6 in {summary})" in output
    assert "Pods needed: 12" in output
    assert "HPA: minReplicas 6 " in output


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--peak-rps", "0", "--growth", "2", "--safety", "1.5"], "--peak-rps must be greater"),
        (["--peak-rps", "1000", "--growth", "-2", "--safety", "1.5"], "--growth must be greater"),
        (["--peak-rps", "1000", "--growth", "2", "--safety", "x"], "--safety must be a number"),
        (
            ["--peak-rps", "1", "--growth", "1", "--safety", "1", "--per-pod-rps", "0"],
            "--per-pod-rps must be greater",
        ),
        (["--growth", "2", "--safety", "1.5"], "required: --peak-rps"),
        (
            ["--peak-rps", "1", "--growth", "1", "--safety", "1", "--per-pod-rps", "5"]
            + ["--from-k6", "s.json"],
            "not allowed with argument",
        ),
    ],
)
def test_refuses_bad_or_missing_input_with_a_clear_error(args: list[str], message: str) -> None:
    with pytest.raises(CommandError, match=message):
        run(*args)


def test_refuses_a_missing_k6_summary(tmp_path: Path) -> None:
    absent = tmp_path / "absent.json"

    with pytest.raises(CommandError, match=f"No k6 summary at {absent}"):
        run("--peak-rps", "1", "--growth", "1", "--safety", "1", "--from-k6", str(absent))
