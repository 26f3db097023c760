"""One Patroni cluster (3 etcd members, 2 PostgreSQL nodes, HAProxy) for the HA tests.

Started once, and only when a test asks for it; synchronous mode is on, so an
acknowledged commit is on both nodes. The project's schema is migrated into its
``highscale`` database through HAProxy's primary port, as a deployment would.
"""

from __future__ import annotations

import contextlib
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from django.db import DatabaseError, connections

from apps.core.db.settings import postgres_database, primary_url
from deploy.local.patroni import PatroniCluster, PatroniSettings, start_cluster
from deploy.local.processes import scratch_dir

ROOT = Path(__file__).resolve().parents[2]
# The Django aliases the tests write through: HAProxy's primary port, and libpq's
# multi-host URL over both nodes.
PROXY = "ha_proxy"
MULTI_HOST = "ha_multi_host"


def app_environment(database_url: str) -> dict[str, str]:
    """Return the environment of an app process on ``database_url`` and nothing else."""
    env = {**os.environ, "DATABASE_URL": database_url}
    env.update(DATABASE_REPLICA_URLS="", REDIS_URL="", CELERY_BROKER_URL="")
    env.update(REDIS_SENTINELS="", REDIS_CLUSTER_NODES="")
    env.pop("PROMETHEUS_MULTIPROC_DIR", None)
    return env


@pytest.fixture(scope="session")
def ha_cluster() -> Iterator[PatroniCluster]:
    """Start the session's Patroni cluster (synchronous mode) and migrate it."""
    cluster = start_cluster(
        scratch_dir("highscale-ha-"), settings=PatroniSettings(synchronous_mode=True)
    )
    try:
        subprocess.run(
            [sys.executable, "manage.py", "migrate", "--noinput", "-v", "0"],
            cwd=ROOT, env=app_environment(cluster.primary_url), check=True, timeout=300,
        )  # fmt: skip
        yield cluster
    finally:
        cluster.stop(graceful=False)


@pytest.fixture
def cluster(ha_cluster: PatroniCluster) -> PatroniCluster:
    """Return the session's cluster with every node running and replicating again."""
    for name, node in ha_cluster.nodes.items():
        if not node.running:
            ha_cluster.revive(name)
    ha_cluster.wait_healthy()
    return ha_cluster


def _alias_settings(url: str) -> dict[str, Any]:
    database = {
        **connections.settings["default"],
        **postgres_database(primary_url(url), conn_max_age=0, pool_min=0, pool_max=0),
    }
    # A commit waiting for a synchronous standby that is gone must not hang the test.
    database["OPTIONS"]["options"] = "-c statement_timeout=5000"
    database["TEST"] = {"MIRROR": "default"}
    return database


@pytest.fixture
def ha_db(cluster: PatroniCluster, django_db_blocker: Any) -> Iterator[PatroniCluster]:
    """Add the ``ha_proxy`` and ``ha_multi_host`` aliases for the test; allow their use.

    They are built from the URLs the way settings build ``DATABASES`` (primary_url,
    postgres_database), and exist only during the test, so no other test's
    ``databases="__all__"`` includes them.
    """
    urls = {PROXY: cluster.primary_url, MULTI_HOST: cluster.multi_host_url}
    for alias, url in urls.items():
        connections.settings[alias] = _alias_settings(url)
    try:
        with django_db_blocker.unblock():
            yield cluster
    finally:
        for alias in urls:
            with contextlib.suppress(DatabaseError):
                connections[alias].close()
            with contextlib.suppress(AttributeError):
                del connections[alias]
            connections.settings.pop(alias, None)
