"""The generated Patroni and HAProxy configurations, without starting anything."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from deploy.local.haproxy import Backend, config
from deploy.local.patroni import FAST_PARAMETERS, PatroniNode, PatroniSettings, node_config


def test_the_failover_settings_reach_the_dcs_section(tmp_path: Path) -> None:
    node = PatroniNode("pg1", tmp_path, port=5441, rest_port=8011)
    settings = PatroniSettings(synchronous_mode=True)

    parsed = yaml.safe_load(
        node_config(node, ["127.0.0.1:2379"], settings, FAST_PARAMETERS, durable=False)
    )

    dcs = parsed["bootstrap"]["dcs"]
    assert {k: dcs[k] for k in ("ttl", "loop_wait", "retry_timeout")} == {
        "ttl": 20, "loop_wait": 2, "retry_timeout": 5,
    }  # fmt: skip
    assert dcs["maximum_lag_on_failover"] == 1048576
    assert dcs["synchronous_mode"] is True
    assert parsed["postgresql"]["listen"] == "127.0.0.1:5441"
    assert parsed["postgresql"]["parameters"]["fsync"] == "off"
    assert "no-sync" in parsed["bootstrap"]["initdb"]
    assert parsed["etcd3"]["hosts"] == ["127.0.0.1:2379"]


def test_a_durable_node_keeps_fsync_everywhere(tmp_path: Path) -> None:
    node = PatroniNode("pg1", tmp_path, port=5441, rest_port=8011)

    parsed = yaml.safe_load(
        node_config(node, ["127.0.0.1:2379"], PatroniSettings(), {}, durable=True)
    )

    assert "fsync" not in parsed["postgresql"]["parameters"]
    assert "no-sync" not in parsed["bootstrap"]["initdb"]
    assert parsed["bootstrap"]["dcs"]["synchronous_mode"] is False


@pytest.mark.parametrize(("ttl", "loop_wait", "retry_timeout"), [(19, 2, 5), (20, 12, 5)])
def test_settings_patroni_would_refuse_are_refused(
    ttl: int, loop_wait: int, retry_timeout: int
) -> None:
    with pytest.raises(ValueError, match="ttl >= 20"):
        PatroniSettings(ttl=ttl, loop_wait=loop_wait, retry_timeout=retry_timeout)


def _two_node_haproxy_config() -> str:
    return config(
        [Backend("pg1", 5441, 8011), Backend("pg2", 5442, 8012)],
        primary_port=6001,
        replica_port=6002,
        stats_socket=Path("/tmp/h.sock"),  # noqa: S108 -- only written into the text
    )


def test_haproxy_checks_patronis_rest_port_and_cuts_sessions_of_a_node_marked_down() -> None:
    text = _two_node_haproxy_config()

    primary, replica = text.split("listen primary\n")[1].split("listen replica\n")
    assert "option httpchk GET /primary" in primary
    assert "option httpchk GET /replica" in replica
    for section in (primary, replica):
        assert "on-marked-down shutdown-sessions" in section
        assert "server pg1 127.0.0.1:5441 check port 8011" in section
        assert "server pg2 127.0.0.1:5442 check port 8012" in section


def test_haproxy_gives_up_on_a_refusing_old_leader_within_a_second_and_redispatches() -> None:
    # A node that stopped leading refuses until its check marks it down. HAProxy retries
    # a refused connect 3 times (its default), each after min(timeout connect, 1 s): with
    # 2 s a connection was held 3 s in a switchover, then failed.
    text = _two_node_haproxy_config()
    defaults = text.split("defaults\n")[1].split("listen primary\n")[0]
    [connect] = [line.split()[-1] for line in defaults.splitlines() if "timeout connect" in line]
    seconds = float(connect.removesuffix("ms")) / 1000 if connect.endswith("ms") else float(connect)

    assert "retries" not in defaults  # the default, 3
    assert 3 * min(seconds, 1.0) < 1.0
    assert "option redispatch 1" in defaults
