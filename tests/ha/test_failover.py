"""Planned and unplanned leader changes under the app's Django connections.

The leader kill runs last: it leaves the cluster with one node until the ``cluster``
fixture of a later test brings the old leader back.
"""

from __future__ import annotations

import time

from deploy.local.patroni import PatroniCluster
from tests.ha.conftest import MULTI_HOST, PROXY
from tests.ha.writes import server_port, skus_on, write, write_until

# Patroni's switchover is a clean handover; this bounds the wait, not the goal.
SWITCHOVER_DEADLINE = 60.0


def test_after_a_switchover_new_connections_reach_the_new_leader(ha_db: PatroniCluster) -> None:
    write(PROXY, "before-switchover")
    write(MULTI_HOST, "before-switchover")

    old, new = ha_db.switchover()

    deadline = time.monotonic() + SWITCHOVER_DEADLINE
    written = {alias: write_until(alias, "switched", deadline) for alias in (PROXY, MULTI_HOST)}
    assert None not in written.values()
    assert new != old
    assert server_port(PROXY) == ha_db.nodes[new].port
    assert server_port(MULTI_HOST) == ha_db.nodes[new].port
    assert skus_on(ha_db.node_url(new), "switched-") == set(written.values())


def test_after_the_leader_is_killed_writes_succeed_within_ttl_plus_5s_and_none_acknowledged_is_lost(
    ha_db: PatroniCluster,
) -> None:
    assert ha_db.settings.synchronous_mode
    # Acknowledged commits right up to the kill: each returned only once the
    # synchronous standby had flushed it.
    acknowledged = {write(PROXY, "acked") for _ in range(40)}

    killed = ha_db.kill_leader()
    deadline = time.monotonic() + ha_db.settings.ttl + 5
    written = {alias: write_until(alias, "after-kill", deadline) for alias in (PROXY, MULTI_HOST)}

    assert written[PROXY] is not None, "no write through HAProxy within ttl + 5 s"
    assert written[MULTI_HOST] is not None, "no write through the multi-host URL within ttl + 5 s"
    new = ha_db.leader()
    assert new is not None
    assert new != killed
    assert server_port(PROXY) == server_port(MULTI_HOST) == ha_db.nodes[new].port
    on_new_leader = ha_db.node_url(new)
    assert skus_on(on_new_leader, "acked-") == acknowledged
    assert skus_on(on_new_leader, "after-kill-") == set(written.values())
