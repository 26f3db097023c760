"""``make failover-drill --short``: one round of each fault under order load, end to end.

The drill builds its own topology (Patroni + etcd + HAProxy, Redis Sentinel, 3 RabbitMQ
nodes, the stack's app tier) in a private directory, and exits 0 only when no order was
lost, duplicated or left pending and every window met its goal, 1 when a goal was
missed (the table says which), 2 when the topology could not start. The test holds the
drill to what must never happen, a lost or duplicated order, and to its table; the
windows and the pending count are the drill's own verdict (docs/ha.md, "Drill"). Takes
4–8 minutes on a loaded 2-core box.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

import pytest

from tests.deploy.test_stack import APP_VARIABLES, _commands_mentioning
from tests.deploy.test_stack_ha import ENGINE_VARIABLES

ROOT = Path(__file__).resolve().parents[2]
FAULTS = (
    "PostgreSQL leader SIGKILL",
    "Redis master SIGKILL",
    "RabbitMQ orders-queue leader SIGKILL",
    "Patroni switchover",
)


# The whole drill, start to verdict, runs longer than the suite's default per-test limit.
@pytest.mark.timeout(900)
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

        assert result.returncode in (0, 1), result.stdout[-6000:] + result.stderr[-3000:]
        table = [row.split(" | ") for row in rows[1:]]
        assert [cells[0].removeprefix("| ") for cells in table] == list(FAULTS)
        assert [(cells[3], cells[4]) for cells in table] == [("0", "0")] * len(FAULTS)
        verdict = "every goal met" if result.returncode == 0 else "GOALS MISSED"
        assert f"failover drill: {verdict}" in result.stdout
        assert _commands_mentioning(str(base)) == []
    finally:
        shutil.rmtree(base, ignore_errors=True)
