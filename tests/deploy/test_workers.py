"""The two worker pools of deploy/workers.py, the same in the stack, Compose and Kubernetes.

And the probes that follow readiness: nothing restarts a pod or takes it out of service
because the broker, Redis or a replica is down.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from django.conf import settings

from apps.core.events.routing import events
from apps.orders.events import NOTIFY_WAREHOUSE, RESERVE_INVENTORY
from deploy.stack.layout import Layout
from deploy.stack.services import services
from deploy.workers import FAST, POOLS, WEBHOOKS, WorkerPool
from tests.deploy.test_manifests import applied_resources, compose, containers, k8s_container

ROOT = Path(__file__).resolve().parents[2]
DEPLOYMENTS = {FAST.name: "highscale-worker", WEBHOOKS.name: "highscale-webhook-worker"}


def _options(command: list[str]) -> dict[str, str]:
    """Return a celery worker command's ``-Q``, prefetch and concurrency values."""
    found = {}
    for flag in ("-Q", "--prefetch-multiplier", "--concurrency"):
        assert command.count(flag) == 1, (flag, command)
        found[flag] = command[command.index(flag) + 1]
    return found


def _expected(pool: WorkerPool, prefix: str = "highscale", concurrency: int = 2) -> dict[str, str]:
    return {
        "-Q": ",".join(pool.queue_names(prefix)),
        "--prefetch-multiplier": str(pool.prefetch_multiplier),
        "--concurrency": str(concurrency),
    }


def test_the_pools_split_every_declared_queue_between_them_once() -> None:
    declared = {queue.name for queue in settings.CELERY_TASK_QUEUES}
    prefix = settings.EVENTS_QUEUE_PREFIX
    per_pool = [set(pool.queue_names(prefix)) for pool in POOLS]

    assert set.union(*per_pool) == declared
    assert sum(map(len, per_pool)) == len(declared)
    assert (FAST.prefetch_multiplier, WEBHOOKS.prefetch_multiplier) == (4, 1)


def test_the_webhook_pool_takes_the_warehouse_calls_and_the_fast_pool_the_reservations() -> None:
    assert events.queue_of(NOTIFY_WAREHOUSE) in WEBHOOKS.queues
    assert events.queue_of(RESERVE_INVENTORY) in FAST.queues
    consumer_queues = {c.queue for event_type in events for c in event_type.consumers}
    assert consumer_queues <= {queue for pool in POOLS for queue in pool.queues}


def test_make_stack_runs_one_process_per_pool_with_its_queues_and_prefetch(tmp_path: Path) -> None:
    layout = Layout.from_env(
        {
            "STACK_VAR_DIR": str(tmp_path),
            "EVENTS_QUEUE_PREFIX": "given",
            "STACK_WORKER_CONCURRENCY": "3",
            "STACK_WEBHOOK_WORKER_CONCURRENCY": "5",
            "STACK_BROKER_URL": "amqp://guest:guest@127.0.0.1:5672//",
        }
    )
    by_name = {service.name: service for service in services(layout)}

    assert _options(by_name["worker"].command) == _expected(FAST, "given", 3)
    assert _options(by_name["webhook-worker"].command) == _expected(WEBHOOKS, "given", 5)
    metrics_ports = {by_name[pool.name].env["CELERY_METRICS_PORT"] for pool in POOLS}
    assert metrics_ports == {"9540", "9541"}


@pytest.mark.parametrize("pool", POOLS, ids=lambda pool: pool.name)
def test_compose_and_kubernetes_run_each_pool_with_its_queues_and_prefetch(
    pool: WorkerPool,
) -> None:
    compose_command = compose()["services"][pool.name]["command"]
    k8s_command = k8s_container(DEPLOYMENTS[pool.name])["command"]

    assert _options(compose_command) == _expected(pool)
    assert k8s_command == compose_command


def test_the_image_names_each_pool_command() -> None:
    text = (ROOT / "Dockerfile").read_text()

    for pool in POOLS:
        assert " ".join(pool.arguments()) in text, pool.name


def _probes(container: dict[str, Any]) -> list[dict[str, Any]]:
    kinds = ("startupProbe", "livenessProbe", "readinessProbe")
    return [container[kind] for kind in kinds if kind in container]


def test_no_kubernetes_probe_fails_for_a_dependency_the_pod_serves_without() -> None:
    for workload in applied_resources():
        if workload["kind"] not in {"Deployment", "Job"}:
            continue
        for container in containers(workload):
            for probe in _probes(container):
                path = probe.get("httpGet", {}).get("path")
                # /healthz touches nothing; /readyz fails only for the primary database.
                assert path in {None, "/healthz", "/readyz"}, (workload["metadata"], path)
            if "livenessProbe" in container and "httpGet" in container["livenessProbe"]:
                assert container["livenessProbe"]["httpGet"]["path"] == "/healthz"


def test_no_compose_health_check_probes_strict_readiness_or_a_dependency() -> None:
    data = compose()
    for name, service in data["services"].items():
        test = " ".join(service.get("healthcheck", {}).get("test", []))
        assert "strict" not in test, name
        if service.get("image", "").startswith("highscale:"):
            assert "readyz" not in test, name
            # Nothing of the app waits for Redis or RabbitMQ to be healthy.
            for dependency, condition in service.get("depends_on", {}).items():
                if dependency in {"redis", "rabbitmq"}:
                    assert condition == {"condition": "service_started"}, (name, dependency)
