"""README's first-order snippet runs as written against the ``make run`` server.

The steps of ``make run`` (migrate, demo data, runserver) on the embedded default in a
temporary directory; the snippet is taken from README.md, only its port changed to the
server's free one. A ``curl`` first in PATH runs the real curl and records each
request's status and body, so every step is checked.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.config.subprocess_env import embedded_environment, manage, runserver
from tests.docs.markdown import README, section, shell_snippets

RECORDING_CURL = """#!/bin/sh
n=$(find "$CURL_LOG" -name "*.status" | wc -l)
n=$((n + 1))
"$REAL_CURL" -o "$CURL_LOG/$n.body" -w '%{http_code}' "$@" > "$CURL_LOG/$n.status"
status=$?
cat "$CURL_LOG/$n.body"
exit $status
"""


def first_order_snippet() -> str:
    snippets = [s for s in shell_snippets(section(README.read_text(), "Quick start"))]
    chosen = [s for s in snippets if "/api/v1/auth/token" in s]
    assert len(chosen) == 1, "README's quick start should hold one sign-up/token/order snippet"
    return chosen[0]


@pytest.fixture(scope="module")
def make_run_server(
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[tuple[int, dict[str, str]]]:
    """``make run``'s steps with fewer demo rows, served by runserver on a free port."""
    home = tmp_path_factory.mktemp("quickstart")
    env = embedded_environment(home / "highscale.sqlite3")
    for args in (
        ("migrate", "--noinput"),
        ("seed_demo", "--users", "1", "--products", "5", "--orders", "0", "--if-empty"),
    ):
        step = manage(env, *args)
        assert step.returncode == 0, step.stderr[-2000:]
    with runserver(env, home / "runserver.log") as base_url:
        yield int(base_url.rsplit(":", 1)[1]), env


def test_the_quick_start_snippet_runs_as_written(
    make_run_server: tuple[int, dict[str, str]], tmp_path: Path
) -> None:
    port, env = make_run_server
    snippet = first_order_snippet()
    assert "localhost:8000" in snippet
    bin_dir, log_dir = tmp_path / "bin", tmp_path / "curl"
    bin_dir.mkdir()
    log_dir.mkdir()
    (bin_dir / "curl").write_text(RECORDING_CURL)
    (bin_dir / "curl").chmod(0o755)
    real_curl = shutil.which("curl")
    assert real_curl is not None, "curl is needed to run README's snippet"
    shell_env = {
        **env,
        "PATH": f"{bin_dir}{os.pathsep}{env.get('PATH', '')}",
        "REAL_CURL": real_curl,
        "CURL_LOG": str(log_dir),
    }
    run = subprocess.run(
        [
            "bash",
            "-e",
            "-o",
            "pipefail",
            "-c",
            snippet.replace("localhost:8000", f"localhost:{port}"),
        ],
        env=shell_env,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert run.returncode == 0, (run.stdout, run.stderr)

    statuses = [(log_dir / f"{n}.status").read_text() for n in range(1, 5)]
    bodies = [json.loads((log_dir / f"{n}.body").read_text()) for n in range(1, 5)]
    assert statuses == ["201", "200", "201", "200"], bodies
    signed_up, token, order, listed = bodies
    assert signed_up["username"] == "ada"
    assert token["token"]
    assert [(i["product_id"], i["quantity"]) for i in order["lines"]] == [(1, 2)]
    assert [o["id"] for o in listed["results"]] == [order["id"]]
    # Without a broker the consumers run in-process after the commit (docs/events.md).
    assert listed["results"][0]["status"] in {"confirmed", "rejected"}
