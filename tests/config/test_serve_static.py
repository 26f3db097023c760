"""``DJANGO_SERVE_STATIC``: the container image's app serves collectstatic's output itself."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from tests.config.subprocess_env import ROOT, embedded_environment, manage

# Fetch one admin stylesheet through the whole middleware stack, as a request would.
FETCH = """
import django
django.setup()
from django.test import Client
response = Client().get("/static/admin/css/base.css")
body = b"".join(response.streaming_content) if response.streaming else response.content
print(response.status_code, response["Content-Type"].split(";")[0], len(body) > 1000)
"""


def fetch_stylesheet(env: dict[str, str]) -> str:
    result = subprocess.run(
        [sys.executable, "-c", FETCH],
        cwd=ROOT,
        env={**env, "DJANGO_SETTINGS_MODULE": "config.settings"},
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    return result.stdout.strip()


def test_static_files_are_served_by_the_app_only_when_asked(tmp_path: Path) -> None:
    static_root = tmp_path / "static"
    env = embedded_environment(
        tmp_path / "db.sqlite3",
        DJANGO_DEBUG="false",
        DJANGO_SECRET_KEY="x" * 60,
        DJANGO_ALLOWED_HOSTS="testserver",
        DJANGO_STATIC_ROOT=str(static_root),
    )
    collected = manage(env, "collectstatic", "--noinput")
    assert collected.returncode == 0, collected.stderr

    served = fetch_stylesheet({**env, "DJANGO_SERVE_STATIC": "true"})
    not_served = fetch_stylesheet(env)

    assert served == "200 text/css True"
    assert not_served.startswith("404 application/json")
