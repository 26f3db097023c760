"""Capacity arithmetic, k6 summary parsing and the scale matrix's boundaries."""

from __future__ import annotations

import json
from decimal import Decimal
from pathlib import Path

import pytest

from apps.core.http.errors import InvalidInput
from apps.observability.capacity import (
    SCALE_MATRIX,
    capacity_plan,
    k6_summary_rps,
    parse_positive,
    scale_advice,
)


def test_worked_example_requires_3000_rps() -> None:
    plan = capacity_plan(peak_rps=Decimal(1000), growth=Decimal(2), safety=Decimal("1.5"))

    assert plan.required_rps == Decimal(3000)
    assert plan.pods_needed is None
    assert plan.hpa_min_replicas is None
    assert plan.hpa_max_replicas is None


def test_worked_example_with_500_rps_per_pod_needs_6_pods_and_hpa_3_to_6() -> None:
    plan = capacity_plan(
        peak_rps=Decimal(1000), growth=Decimal(2), safety=Decimal("1.5"), per_pod_rps=Decimal(500)
    )

    assert plan.pods_needed == 6
    assert plan.hpa_min_replicas == 3
    assert plan.hpa_max_replicas == 6


def test_pods_round_up_only_on_a_true_remainder() -> None:
    exact = capacity_plan(
        peak_rps=Decimal("0.1"), growth=Decimal(3), safety=Decimal(1), per_pod_rps=Decimal("0.1")
    )
    over = capacity_plan(
        peak_rps=Decimal(1001), growth=Decimal(2), safety=Decimal("1.5"), per_pod_rps=Decimal(500)
    )

    assert exact.required_rps == Decimal("0.3")
    assert exact.pods_needed == 3
    assert over.required_rps == Decimal("3003.0")
    assert over.pods_needed == 7
    assert over.hpa_min_replicas == 4


def test_hpa_min_never_drops_below_two_pods() -> None:
    plan = capacity_plan(
        peak_rps=Decimal(10), growth=Decimal(1), safety=Decimal(1), per_pod_rps=Decimal(1000)
    )

    assert plan.pods_needed == 1
    assert plan.hpa_min_replicas == 2
    assert plan.hpa_max_replicas == 2


@pytest.mark.parametrize("field", ["peak_rps", "growth", "safety", "per_pod_rps"])
@pytest.mark.parametrize("bad", [Decimal(0), Decimal(-1)])
def test_capacity_plan_refuses_non_positive_input(field: str, bad: Decimal) -> None:
    values = {name: Decimal(1) for name in ("peak_rps", "growth", "safety", "per_pod_rps")}
    values[field] = bad

    with pytest.raises(InvalidInput, match="greater than zero"):
        capacity_plan(**values)


@pytest.mark.parametrize("raw", ["abc", "", "nan", "inf", "-inf"])
def test_parse_positive_refuses_what_is_not_a_finite_number(raw: str) -> None:
    with pytest.raises(InvalidInput, match=r"--growth must be a (finite )?number"):
        parse_positive("--growth", raw)


def test_k6_summary_rps_reads_the_summary_export_shape(tmp_path: Path) -> None:
    path = tmp_path / "summary.json"
    path.write_text(json.dumps({"metrics": {"http_reqs": {"count": 5000, "rate": 412.5}}}))

    assert k6_summary_rps(path) == Decimal("412.5")


def test_k6_summary_rps_reads_the_handle_summary_shape(tmp_path: Path) -> None:
    path = tmp_path / "summary.json"
    metric = {"type": "counter", "contains": "default", "values": {"count": 10, "rate": 87.25}}
    path.write_text(json.dumps({"metrics": {"http_reqs": metric}}))

    assert k6_summary_rps(path) == Decimal("87.25")


@pytest.mark.parametrize(
    ("content", "message"),
    [
        ("not json", "not a readable k6 summary"),
        ("[]", "no http_reqs rate"),
        ('{"metrics": {}}', "no http_reqs rate"),
        ('{"metrics": {"http_reqs": {"rate": "fast"}}}', "no http_reqs rate"),
        ('{"metrics": {"http_reqs": {"count": 0, "rate": 0}}}', "greater than zero"),
    ],
)
def test_k6_summary_rps_refuses_a_file_without_a_positive_rate(
    tmp_path: Path, content: str, message: str
) -> None:
    path = tmp_path / "summary.json"
    path.write_text(content)

    with pytest.raises(InvalidInput, match=message):
        k6_summary_rps(path)


def test_k6_summary_rps_names_a_missing_file(tmp_path: Path) -> None:
    with pytest.raises(InvalidInput, match="No k6 summary at"):
        k6_summary_rps(tmp_path / "absent.json")


@pytest.mark.parametrize(
    ("users", "label"),
    [
        (1, "under 1K users"),
        (999, "under 1K users"),
        (1_000, "1K to 10K users"),
        (9_999, "1K to 10K users"),
        (10_000, "10K to 100K users"),
        (99_999, "10K to 100K users"),
        (100_000, "100K to 1M users"),
        (999_999, "100K to 1M users"),
        (1_000_000, "1M users and more"),
        (50_000_000, "1M users and more"),
    ],
)
def test_scale_advice_puts_each_boundary_in_the_band_it_opens(users: int, label: str) -> None:
    assert scale_advice(users).label == label


def test_scale_matrix_bands_are_contiguous() -> None:
    bounds = [(row.low, row.high) for row in SCALE_MATRIX]

    assert bounds == [
        (1, 1_000),
        (1_000, 10_000),
        (10_000, 100_000),
        (100_000, 1_000_000),
        (1_000_000, None),
    ]


@pytest.mark.parametrize("users", [0, -5])
def test_scale_advice_refuses_fewer_than_one_user(users: int) -> None:
    with pytest.raises(InvalidInput, match="1 or more"):
        scale_advice(users)
