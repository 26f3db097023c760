"""The session's 3-node RabbitMQ cluster, started for the first test that asks for it.

Its nodes run under a scratch directory on free ports with a private epmd; the fixture
stops them all at the end of the session and fails the teardown if a process or port of
the cluster is left behind.
"""

from __future__ import annotations

import shutil
from collections.abc import Iterator

import pytest

from deploy.local.processes import ServerError, port_open, processes_mentioning, scratch_dir
from deploy.local.rabbitmq_cluster import RabbitMQCluster


@pytest.fixture(scope="session")
def rabbitmq_cluster() -> Iterator[RabbitMQCluster]:
    """Yield a running 3-node cluster (nodes ``hs1``..``hs3``) for the whole session.

    A test may kill nodes; the cluster is not repaired between tests, so a test that
    needs all three running calls ``start_node`` for the ones it finds down.
    """
    root = scratch_dir("highscale-rmq-cluster-")
    cluster = RabbitMQCluster(root)
    try:
        cluster.start()
        yield cluster
    finally:
        cluster.stop()
        ports = [node.port for node in cluster.nodes] + [cluster.epmd_port]
        left = processes_mentioning(root)
        open_ports = [port for port in ports if port and port_open("127.0.0.1", port)]
        shutil.rmtree(root, ignore_errors=True)
        if left or open_ports:
            raise ServerError(f"the cluster left {left} running, ports {open_ports} open")
