"""``make failover-drill --short``: one round of each fault under order load, end to end.

The drill builds its own topology (Patroni + etcd + HAProxy, Redis Sentinel, 3 RabbitMQ
nodes, the stack's app tier) in a private directory, and exits 0 only when no order was
lost, duplicated or left pending and every window met its goal. Takes ~2–3 minutes.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

from tests.deploy.test_stack import APP_VARIABLES, _commands_mentioning
from tests.deploy.test_stack_ha import ENGINE_VARIABLES

ROOT = Path(__file__).resolve().parents[2]
FAULTS = (
    "PostgreSQL leader SIGKILL",
    "Redis master SIGKILL",
    "RabbitMQ orders-queue leader SIGKILL",
    "Patroni switchover",
)


def test_the_short_drill_loses_and_duplicates_no_order_and_leaves_nothing_running() -> None:
    base = Path(tempfile.mkdtemp(prefix="highscale-drill-"))
    base.chmod(0o755)  # the engines run as postgres and rabbitmq inside it
    drop = (*APP_VARIABLES, *ENGINE_VARIABLES)
    env = {key: value for key, value in os.environ.items() if key not in drop}
    env["FAILOVER_DRILL_DIR"] = str(base / "drill")
    try:
        result = subprocess.run(
            [sys.executable, "-m", "deploy.failover", "--short"],
            cwd=ROOT,
            env=env,
            capture_output=True,
            text=True,
            timeout=600,
        )
        rows = [line for line in result.stdout.splitlines() if line.startswith("| ")]

        assert result.returncode == 0, result.stdout[-6000:] + result.stderr[-3000:]
        assert [row.split(" | ")[0].removeprefix("| ") for row in rows[1:]] == list(FAULTS)
        for row in rows[1:]:
            lost, duplicated, pending = row.split(" | ")[3:6]
            assert (lost, duplicated, pending) == ("0", "0", "0"), row
        assert "every goal met" in result.stdout
        assert _commands_mentioning(str(base)) == []
    finally:
        shutil.rmtree(base, ignore_errors=True)
