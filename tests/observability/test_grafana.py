"""The Grafana dashboard is valid, its PromQL parses, and it names only exported metrics."""

from __future__ import annotations

import json
import re
import subprocess
from pathlib import Path
from typing import Any

from prometheus_client import REGISTRY

from apps.observability.celery_signals import _scrape_gauges
from deploy.local.binaries import find_binary

DASHBOARD = Path(__file__).resolve().parents[2] / "deploy" / "grafana" / "highscale.json"
# Every selector in the dashboard is written `name{...}`, so this finds every metric.
SELECTOR_RE = re.compile(r"([A-Za-z_:][A-Za-z0-9_:]*)\{")
SUFFIXES = {
    "counter": ("_total",),
    "histogram": ("_bucket", "_count", "_sum"),
    "gauge": ("",),
    "summary": ("_count", "_sum", ""),
}


def _expressions() -> list[str]:
    dashboard = json.loads(DASHBOARD.read_text())
    return [target["expr"] for panel in dashboard["panels"] for target in panel.get("targets", [])]


def _exported_sample_names() -> set[str]:
    """Return the sample names the web /metrics serves, plus the workers' scrape gauges."""
    names = set(_scrape_gauges)
    for family in REGISTRY.collect():
        for suffix in SUFFIXES.get(family.type, ("",)):
            names.add(family.name + suffix)
    return names


def test_dashboard_is_valid_json_with_unique_panel_ids_and_a_prometheus_datasource():
    dashboard: dict[str, Any] = json.loads(DASHBOARD.read_text())

    ids = [panel["id"] for panel in dashboard["panels"]]
    assert len(ids) == len(set(ids))
    assert dashboard["uid"] == "highscale-red"
    assert [t["name"] for t in dashboard["templating"]["list"]] == ["datasource"]
    assert len(_expressions()) >= 15


def test_every_expression_names_only_metrics_the_project_exports(client):
    # One request through the whole middleware stack loads every module that defines metrics.
    assert client.get("/metrics").status_code == 200
    exported = _exported_sample_names()
    used = {name for expr in _expressions() for name in SELECTOR_RE.findall(expr)}

    assert used - exported == set()
    assert {
        "http_requests_total",
        "http_request_duration_seconds_bucket",
        "cache_requests_total",
        "celery_queue_length",
        "dead_letters",
        "replica_lag_seconds",
    } <= used


def test_every_expression_names_only_the_scrape_jobs_of_the_prometheus_config():
    config = (DASHBOARD.parents[1] / "prometheus" / "prometheus.yml").read_text()
    jobs = set(re.findall(r"job_name: (\S+)", config))

    used = {job for expr in _expressions() for job in re.findall(r'job="([^"]+)"', expr)}

    assert used == jobs == {"highscale-web", "highscale-worker"}


def test_every_expression_parses_as_promql(tmp_path):
    # promtool has no offline query parser; a rules file makes it parse each one.
    rules = "groups:\n  - name: dashboard\n    rules:\n" + "".join(
        f"      - record: dashboard:expr{i}\n        expr: {json.dumps(expr)}\n"
        for i, expr in enumerate(_expressions())
    )
    (tmp_path / "rules.yml").write_text(rules)

    result = subprocess.run(
        [find_binary("promtool"), "check", "rules", str(tmp_path / "rules.yml")],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )

    assert result.returncode == 0, result.stdout + result.stderr
    assert f"SUCCESS: {len(_expressions())} rules found" in result.stdout
