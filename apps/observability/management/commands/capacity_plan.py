"""Plan capacity from a peak, growth and safety factor: ``manage.py capacity_plan``."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser

from apps.core.http.errors import ApplicationError
from apps.observability.capacity import (
    HPA_MIN_REPLICAS_FLOOR,
    CapacityPlan,
    capacity_plan,
    k6_summary_rps,
    parse_positive,
)


def _number(value: Any) -> str:
    """Render a Decimal without a trailing ``.0`` and with thousands separators."""
    text = f"{value:,f}"
    return text.rstrip("0").rstrip(".") if "." in text else text


class Command(BaseCommand):
    help = (
        "Required capacity = peak RPS × growth × safety; with a measured per-pod RPS "
        "(--per-pod-rps, or the http_reqs rate of a k6 summary with --from-k6) also the "
        "pods needed and the HPA minReplicas/maxReplicas."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--peak-rps", required=True, help="today's peak requests per second")
        parser.add_argument(
            "--growth", required=True, help="expected growth factor, e.g. 2 for doubling"
        )
        parser.add_argument("--safety", required=True, help="safety factor, e.g. 1.5")
        source = parser.add_mutually_exclusive_group()
        source.add_argument("--per-pod-rps", help="measured requests per second of one pod")
        source.add_argument(
            "--from-k6",
            metavar="SUMMARY_JSON",
            help="read the per-pod RPS from a k6 summary (its http_reqs rate)",
        )

    def handle(self, *args: Any, **options: Any) -> None:
        try:
            peak = parse_positive("--peak-rps", options["peak_rps"])
            growth = parse_positive("--growth", options["growth"])
            safety = parse_positive("--safety", options["safety"])
            per_pod = None
            source = ""
            if options["per_pod_rps"] is not None:
                per_pod = parse_positive("--per-pod-rps", options["per_pod_rps"])
                source = "--per-pod-rps"
            elif options["from_k6"] is not None:
                per_pod = k6_summary_rps(Path(options["from_k6"]))
                source = f"measured by k6 in {options['from_k6']}"
            plan = capacity_plan(peak_rps=peak, growth=growth, safety=safety, per_pod_rps=per_pod)
        except ApplicationError as exc:
            raise CommandError(exc.detail) from None
        self._report(plan, source)

    def _report(self, plan: CapacityPlan, source: str) -> None:
        self.stdout.write(
            f"Required capacity: {_number(plan.peak_rps)} RPS × {_number(plan.growth)} growth "
            f"× {_number(plan.safety)} safety = {_number(plan.required_rps)} RPS"
        )
        if plan.per_pod_rps is None:
            self.stdout.write(
                "Pods needed: unknown; pass --per-pod-rps or --from-k6 with a measured figure."
            )
            return
        self.stdout.write(f"Per-pod capacity: {_number(plan.per_pod_rps)} RPS ({source})")
        self.stdout.write(f"Pods needed: {plan.pods_needed}")
        self.stdout.write(
            f"HPA: minReplicas {plan.hpa_min_replicas} (today's peak × safety, at least "
            f"{HPA_MIN_REPLICAS_FLOOR}), maxReplicas {plan.hpa_max_replicas} (required capacity)"
        )
