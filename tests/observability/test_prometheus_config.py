"""The scrape config, alert rules and /metrics output pass Prometheus's own checks."""

from __future__ import annotations

import subprocess
from pathlib import Path

from deploy.local.binaries import find_binary

PROMETHEUS_DIR = Path(__file__).resolve().parents[2] / "deploy" / "prometheus"
# Installed from Debian when missing (as root), else the run stops with the command.
PROMTOOL = find_binary("promtool")


def _promtool(*args: str, stdin: str | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [PROMTOOL, *args],
        cwd=PROMETHEUS_DIR,
        input=stdin,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


def test_metrics_output_of_a_gunicorn_server_passes_promtool_check_metrics(gunicorn):
    gunicorn.get_many(["/healthz", "/no/such/page", "/readyz", "/api/v1/products"] * 5)

    text = gunicorn.scrape()
    result = _promtool("check", "metrics", stdin=text)

    assert result.returncode == 0, result.stdout + result.stderr
    assert result.stdout + result.stderr == ""
    assert 'http_requests_total{endpoint="/healthz",method="GET",status="200"}' in text
    assert (
        'http_request_duration_seconds_bucket{endpoint="/healthz",le="0.005",method="GET"}' in text
    )


def test_alert_rules_pass_promtool_check_rules():
    result = _promtool("check", "rules", "alerts.yml")

    assert result.returncode == 0, result.stdout + result.stderr
    assert "SUCCESS: 8 rules found" in result.stdout


def test_error_rate_latency_and_dead_letter_alerts_pass_their_unit_tests():
    result = _promtool("test", "rules", "alerts.test.yml")

    assert result.returncode == 0, result.stdout + result.stderr
    assert "SUCCESS" in result.stdout


def test_scrape_config_is_valid_and_names_web_and_worker_jobs():
    result = _promtool("check", "config", "prometheus.yml")
    config = (PROMETHEUS_DIR / "prometheus.yml").read_text()

    assert result.returncode == 0, result.stdout + result.stderr
    assert "job_name: highscale-web" in config
    assert "job_name: highscale-worker" in config
