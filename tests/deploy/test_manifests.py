"""Deploy manifests: ``deploy/k8s``, the ``Dockerfile`` and ``docker-compose.yml``.

The Kubernetes manifests are validated offline against the Kubernetes JSON schemas that
the ``kubernetes-validate`` package ships, in strict mode (unknown fields fail), for the
oldest cluster version supported and the newest schemas available. The other checks pin
what a schema cannot see: the reference's HPA values, non-root pods, probes on
``/healthz`` and ``/readyz``, environment names from the contract, and the same commands
in Kubernetes, the image and Compose as in the local stack.
"""

from __future__ import annotations

import copy
import re
import shlex
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import kubernetes_validate  # type: ignore[import-untyped]  # ships no type information
import pytest
import yaml

from deploy.local.binaries import find_binary

ROOT = Path(__file__).resolve().parents[2]
K8S = ROOT / "deploy" / "k8s"
KUSTOMIZATION = K8S / "kustomization.yaml"
EXAMPLE_SECRET = K8S / "secret.example.yaml"
DOCKERFILE = ROOT / "Dockerfile"
DOCKERIGNORE = ROOT / ".dockerignore"
COMPOSE = ROOT / "docker-compose.yml"
COMPOSE_NGINX = ROOT / "deploy" / "nginx" / "compose.conf"

# The oldest Kubernetes these manifests support (autoscaling/v2 and policy/v1 are GA
# there) and the newest schemas the installed kubernetes-validate ships.
K8S_VERSIONS = ("1.30.0", kubernetes_validate.latest_version())

# The commands the stack runs (README "Events and queues", deploy/gunicorn.conf.py).
WEB_COMMAND = ["gunicorn", "-c", "deploy/gunicorn.conf.py", "config.wsgi"]
WORKER_COMMAND_PREFIX = ["celery", "-A", "config", "worker"]
BEAT_COMMAND_PREFIX = ["celery", "-A", "config", "beat"]

# The contract's environment (CONTRACT.md "Environment"): every app pod gets all of them.
CONTRACT_ENV = {
    "DATABASE_URL",
    "DATABASE_REPLICA_URLS",
    "REDIS_URL",
    "CELERY_BROKER_URL",
    "DJANGO_SECRET_KEY",
    "DJANGO_DEBUG",
    "DJANGO_ALLOWED_HOSTS",
    "WAREHOUSE_WEBHOOK_URL",
}
# Values that carry credentials: only ever in the Secret, never in the ConfigMap.
SECRET_ENV = {"DJANGO_SECRET_KEY", "DATABASE_URL", "DATABASE_REPLICA_URLS", "CELERY_BROKER_URL"}
# A Secret key that is no variable of its own: the migrate Job's DATABASE_URL (the primary
# itself, not PgBouncer), as in `make stack`.
MIGRATE_KEY = "MIGRATE_DATABASE_URL"
# Names the manifests set that are plumbing rather than app settings: the pod IP from the
# downward API (only expanded into DJANGO_ALLOWED_HOSTS) and the image's Python runtime.
PLUMBING_ENV = {
    "POD_IP",
    "PATH",
    "VIRTUAL_ENV",
    "PYTHONUNBUFFERED",
    "PYTHONDONTWRITEBYTECODE",
    "DJANGO_SETTINGS_MODULE",
}
# The containers' writable scratch directory (an emptyDir), a path inside the pod.
POD_TMP = "/tmp"  # noqa: S108 -- not a temporary file of this process
# Where the app reads its environment.
APP_SOURCES = [ROOT / "config", ROOT / "apps", ROOT / "deploy" / "gunicorn.conf.py"]


def load_documents(path: Path) -> list[dict[str, Any]]:
    """Return the non-empty YAML documents of ``path``."""
    with path.open() as handle:
        return [doc for doc in yaml.safe_load_all(handle) if doc]


def manifest_files() -> list[Path]:
    """Return every Kubernetes manifest under deploy/k8s (kustomization.yaml aside)."""
    return sorted(path for path in K8S.rglob("*.yaml") if path != KUSTOMIZATION)


def applied_resources() -> list[dict[str, Any]]:
    """Return the resources ``kubectl apply -k deploy/k8s`` creates."""
    kustomization = load_documents(KUSTOMIZATION)[0]
    return [doc for name in kustomization["resources"] for doc in load_documents(K8S / name)]


def find(kind: str, name: str, resources: list[dict[str, Any]] | None = None) -> dict[str, Any]:
    matches = [
        doc
        for doc in (applied_resources() if resources is None else resources)
        if doc["kind"] == kind and doc["metadata"]["name"] == name
    ]
    assert len(matches) == 1, f"expected one {kind}/{name}, found {len(matches)}"
    return matches[0]


def workloads() -> list[dict[str, Any]]:
    """Return the Deployments and Jobs that kustomize applies."""
    return [doc for doc in applied_resources() if doc["kind"] in {"Deployment", "Job"}]


def pod_spec(workload: dict[str, Any]) -> dict[str, Any]:
    spec: dict[str, Any] = workload["spec"]["template"]["spec"]
    return spec


def containers(workload: dict[str, Any]) -> list[dict[str, Any]]:
    spec = pod_spec(workload)
    return [*spec.get("initContainers", []), *spec["containers"]]


def container_env(container: dict[str, Any]) -> dict[str, Any]:
    return {item["name"]: item for item in container.get("env", [])}


def k8s_container(deployment: str) -> dict[str, Any]:
    (container,) = pod_spec(find("Deployment", deployment))["containers"]
    found: dict[str, Any] = container
    return found


def compose() -> dict[str, Any]:
    data: dict[str, Any] = yaml.safe_load(COMPOSE.read_text())
    return data


def app_services(data: dict[str, Any]) -> dict[str, dict[str, Any]]:
    """Return the Compose services that run the highscale image."""
    return {
        name: service
        for name, service in data["services"].items()
        if service.get("image", "").startswith("highscale:")
    }


def dockerfile_stages() -> list[list[str]]:
    """Return the Dockerfile's instructions (continuation lines joined), split by stage."""
    logical: list[str] = []
    pending = ""
    for raw in DOCKERFILE.read_text().splitlines():
        line = raw.strip()
        if not pending and (not line or line.startswith("#")):
            continue
        if line.endswith("\\"):
            pending += line[:-1] + " "
            continue
        logical.append(pending + line)
        pending = ""
    stages: list[list[str]] = []
    for instruction in logical:
        if instruction.upper().startswith("FROM "):
            stages.append([])
        if stages:
            stages[-1].append(instruction)
    return stages


def readme_environment_names() -> set[str]:
    """Return the variable names of docs/environment.md's tables (the reference)."""
    section = (ROOT / "docs" / "environment.md").read_text()
    names: set[str] = set()
    for line in section.splitlines():
        if line.startswith("| `"):
            first_cell = line.split("|")[1]
            names.update(re.findall(r"`([A-Z][A-Z0-9_]+)`", first_cell))
    return names


def app_source_text() -> str:
    files: Iterator[Path] = (
        path
        for source in APP_SOURCES
        for path in ([source] if source.is_file() else source.rglob("*.py"))
        if "migrations" not in path.parts
    )
    return "\n".join(path.read_text() for path in files)


# --- Kubernetes: schemas ---------------------------------------------------------------


@pytest.mark.parametrize("version", K8S_VERSIONS)
@pytest.mark.parametrize("path", manifest_files(), ids=lambda path: str(path.relative_to(K8S)))
def test_manifest_validates_offline_against_the_kubernetes_schema(path: Path, version: str) -> None:
    documents = load_documents(path)

    assert documents, f"{path} holds no resource"
    for document in documents:
        # Raises ValidationError (a field that does not exist, a wrong type) or
        # SchemaNotFoundError (an unknown kind or apiVersion): both fail the test.
        kubernetes_validate.validate(document, version, strict=True)


@pytest.mark.parametrize(
    "breakage",
    ["misspelt field", "wrong type", "unknown apiVersion"],
)
def test_a_broken_manifest_fails_validation(breakage: str) -> None:
    deployment = copy.deepcopy(find("Deployment", "highscale-web"))
    container = pod_spec(deployment)["containers"][0]
    expected: type[Exception] = kubernetes_validate.ValidationError
    if breakage == "misspelt field":
        container["livenesProbe"] = container.pop("livenessProbe")
    elif breakage == "wrong type":
        container["ports"][0]["containerPort"] = "eight thousand"
    else:
        deployment["apiVersion"] = "apps/v1beta1"
        expected = kubernetes_validate.SchemaNotFoundError

    with pytest.raises(expected):
        kubernetes_validate.validate(deployment, K8S_VERSIONS[0], strict=True)


def test_kustomization_applies_every_manifest_but_the_example_secret_and_optional_ones() -> None:
    kustomization = load_documents(KUSTOMIZATION)[0]
    listed = kustomization["resources"]
    top_level = {path.name for path in K8S.glob("*.yaml")} - {KUSTOMIZATION.name}

    assert kustomization["apiVersion"] == "kustomize.config.k8s.io/v1beta1"
    assert kustomization["kind"] == "Kustomization"
    assert len(listed) == len(set(listed))
    assert set(listed) == top_level - {EXAMPLE_SECRET.name}
    assert [image["name"] for image in kustomization["images"]] == ["highscale"]
    for workload in workloads():
        for container in containers(workload):
            assert container["image"].split(":")[0] == "highscale"


# --- Kubernetes: what the schemas cannot see ----------------------------------------------


def test_web_hpa_carries_the_reference_values() -> None:
    hpa = find("HorizontalPodAutoscaler", "highscale-web")
    targets = {
        metric["resource"]["name"]: metric["resource"]["target"]
        for metric in hpa["spec"]["metrics"]
    }

    assert hpa["apiVersion"] == "autoscaling/v2"
    assert hpa["spec"]["scaleTargetRef"] == {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "name": "highscale-web",
    }
    assert hpa["spec"]["minReplicas"] == 3
    assert hpa["spec"]["maxReplicas"] == 100
    assert [metric["type"] for metric in hpa["spec"]["metrics"]] == ["Resource", "Resource"]
    assert targets == {
        "cpu": {"type": "Utilization", "averageUtilization": 70},
        "memory": {"type": "Utilization", "averageUtilization": 80},
    }


@pytest.mark.parametrize(
    ("deployment", "optional_file", "queue"),
    [
        ("highscale-worker", "worker-hpa-queue-depth.yaml", "highscale.orders"),
        ("highscale-webhook-worker", "webhook-worker-hpa-queue-depth.yaml", "highscale.webhooks"),
    ],
)
def test_each_worker_pool_scales_on_cpu_or_on_its_own_queue_depth(
    deployment: str, optional_file: str, queue: str
) -> None:
    applied = find("HorizontalPodAutoscaler", deployment)
    optional = find(
        "HorizontalPodAutoscaler", deployment, load_documents(K8S / "optional" / optional_file)
    )

    for hpa in (applied, optional):
        assert hpa["spec"]["scaleTargetRef"]["name"] == deployment
        assert 1 <= hpa["spec"]["minReplicas"] < hpa["spec"]["maxReplicas"]
    assert [m["resource"]["name"] for m in applied["spec"]["metrics"]] == ["cpu"]
    external = [m["external"] for m in optional["spec"]["metrics"] if m["type"] == "External"]
    # The gauge the workers export (apps/observability/scrape_gauges.py), for its own queue.
    assert external[0]["metric"]["name"] == "celery_queue_length"
    assert external[0]["metric"]["selector"] == {"matchLabels": {"queue": queue}}
    assert '"celery_queue_length"' in (ROOT / "apps/observability/scrape_gauges.py").read_text()


def test_every_hpa_and_pdb_points_at_an_applied_deployment() -> None:
    resources = applied_resources()
    deployments = {d["metadata"]["name"]: d for d in resources if d["kind"] == "Deployment"}
    pdbs = [doc for doc in resources if doc["kind"] == "PodDisruptionBudget"]

    for hpa in (doc for doc in resources if doc["kind"] == "HorizontalPodAutoscaler"):
        target = hpa["spec"]["scaleTargetRef"]["name"]
        assert target in deployments
        # The HPA owns the replica count; a fixed one would be reset on every apply.
        assert "replicas" not in deployments[target]["spec"]
    assert {"highscale-web", "highscale-worker", "highscale-webhook-worker"} <= {
        p["metadata"]["name"] for p in pdbs
    }
    for pdb in pdbs:
        selector = pdb["spec"]["selector"]["matchLabels"]
        assert any(
            selector.items() <= d["spec"]["template"]["metadata"]["labels"].items()
            for d in deployments.values()
        ), pdb["metadata"]["name"]


def test_beat_is_a_single_replica_replaced_without_overlap() -> None:
    beat = find("Deployment", "highscale-beat")

    assert beat["spec"]["replicas"] == 1
    assert beat["spec"]["strategy"] == {"type": "Recreate"}
    assert not [
        doc
        for doc in applied_resources()
        if doc["kind"] == "HorizontalPodAutoscaler"
        and doc["spec"]["scaleTargetRef"]["name"] == "highscale-beat"
    ]


def test_deployment_selectors_and_the_service_match_their_pods() -> None:
    service = find("Service", "highscale-web")
    web = find("Deployment", "highscale-web")
    web_ports = {
        port["name"]: port["containerPort"] for port in k8s_container("highscale-web")["ports"]
    }

    for deployment in (doc for doc in workloads() if doc["kind"] == "Deployment"):
        labels = deployment["spec"]["template"]["metadata"]["labels"]
        assert deployment["spec"]["selector"]["matchLabels"].items() <= labels.items()
    assert (
        service["spec"]["selector"].items() <= web["spec"]["template"]["metadata"]["labels"].items()
    )
    assert [port["targetPort"] for port in service["spec"]["ports"]] == ["http"]
    assert web_ports == {"http": 8000}


def test_every_pod_runs_non_root_with_a_read_only_root_and_no_capabilities() -> None:
    for workload in workloads():
        name = workload["metadata"]["name"]
        pod = pod_spec(workload)
        volumes = {volume["name"]: volume for volume in pod["volumes"]}

        assert pod["securityContext"]["runAsNonRoot"] is True, name
        assert pod["securityContext"]["runAsUser"] > 0, name
        assert pod["securityContext"]["seccompProfile"] == {"type": "RuntimeDefault"}, name
        assert pod["automountServiceAccountToken"] is False, name
        for container in containers(workload):
            security = container["securityContext"]
            mounts = {mount["mountPath"]: mount["name"] for mount in container["volumeMounts"]}
            assert security["runAsNonRoot"] is True, name
            assert security["runAsUser"] == pod["securityContext"]["runAsUser"], name
            assert security["allowPrivilegeEscalation"] is False, name
            assert security["readOnlyRootFilesystem"] is True, name
            assert security["capabilities"] == {"drop": ["ALL"]}, name
            # The writable places: /tmp and the metrics directory, both emptyDir.
            assert "emptyDir" in volumes[mounts[POD_TMP]], name
            metrics_dir = container_env(container)["PROMETHEUS_MULTIPROC_DIR"]["value"]
            assert "emptyDir" in volumes[mounts[metrics_dir]], name
            for bound in ("requests", "limits"):
                assert set(container["resources"][bound]) == {"cpu", "memory"}, name


def test_the_pod_user_is_the_image_user() -> None:
    user = next(
        line.split()[1] for line in dockerfile_stages()[-1] if line.upper().startswith("USER ")
    )

    for workload in workloads():
        assert user == "{0}:{0}".format(pod_spec(workload)["securityContext"]["runAsUser"])


def test_web_probes_liveness_on_healthz_and_readiness_on_readyz() -> None:
    web = k8s_container("highscale-web")

    assert web["livenessProbe"]["httpGet"] == {"path": "/healthz", "port": "http"}
    assert web["readinessProbe"]["httpGet"] == {"path": "/readyz", "port": "http"}
    assert web["startupProbe"]["httpGet"] == {"path": "/healthz", "port": "http"}


def test_web_allows_its_pod_ip_as_host_for_probes_and_scrapes() -> None:
    env = container_env(k8s_container("highscale-web"))

    # Kubelet and Prometheus send Host: <pod IP>; Django would answer 400 otherwise.
    assert env["POD_IP"]["valueFrom"] == {"fieldRef": {"fieldPath": "status.podIP"}}
    assert env["DJANGO_ALLOWED_HOSTS"]["value"] == "$(DJANGO_ALLOWED_HOSTS),$(POD_IP)"
    assert list(env).index("POD_IP") < list(env).index("DJANGO_ALLOWED_HOSTS")


@pytest.mark.parametrize("deployment", ["highscale-worker", "highscale-webhook-worker"])
def test_workers_and_beat_have_liveness_probes(deployment: str) -> None:
    worker = k8s_container(deployment)
    beat = k8s_container("highscale-beat")
    metrics_port = {port["name"]: port["containerPort"] for port in worker["ports"]}["metrics"]

    assert worker["livenessProbe"]["tcpSocket"] == {"port": "metrics"}
    assert worker["readinessProbe"]["tcpSocket"] == {"port": "metrics"}
    assert container_env(worker)["CELERY_METRICS_PORT"]["value"] == str(metrics_port)
    assert f"{POD_TMP}/celerybeat-schedule" in " ".join(beat["livenessProbe"]["exec"]["command"])


def test_prometheus_annotations_name_a_container_port() -> None:
    scraped = 0
    for deployment in (doc for doc in workloads() if doc["kind"] == "Deployment"):
        annotations = deployment["spec"]["template"]["metadata"].get("annotations", {})
        if annotations.get("prometheus.io/scrape") != "true":
            continue
        scraped += 1
        ports = [p["containerPort"] for c in containers(deployment) for p in c.get("ports", [])]
        assert int(annotations["prometheus.io/port"]) in ports
        assert annotations["prometheus.io/path"] == "/metrics"
    assert scraped == 3  # web and the two worker pools


def test_kubernetes_commands_are_the_stack_commands() -> None:
    worker = k8s_container("highscale-worker")["command"]
    beat = k8s_container("highscale-beat")["command"]

    assert k8s_container("highscale-web")["command"] == WEB_COMMAND
    assert worker[:4] == WORKER_COMMAND_PREFIX
    assert beat[:4] == BEAT_COMMAND_PREFIX
    # The read-only root filesystem: beat's schedule goes to the /tmp emptyDir.
    assert beat[beat.index("--schedule") + 1].startswith(f"{POD_TMP}/")
    assert (ROOT / "deploy" / "gunicorn.conf.py").is_file()
    assert (ROOT / "config" / "celery.py").is_file()
    migrate = pod_spec(find("Job", "highscale-migrate"))["containers"][0]
    assert migrate["command"] == ["python", "manage.py", "migrate", "--noinput"]
    # Schema changes bypass PgBouncer when the Secret names the primary; else DATABASE_URL.
    assert container_env(migrate)["DATABASE_URL"]["valueFrom"]["secretKeyRef"] == {
        "name": "highscale-secrets",
        "key": MIGRATE_KEY,
        "optional": True,
    }


# --- Environment names ---------------------------------------------------------------------


def kubernetes_env_names() -> set[str]:
    names = set(find("ConfigMap", "highscale-config")["data"])
    names |= set(load_documents(EXAMPLE_SECRET)[0]["stringData"]) - {MIGRATE_KEY}
    for workload in workloads():
        for container in containers(workload):
            names |= set(container_env(container))
    return names


def dockerfile_env_names() -> set[str]:
    """Return the names the runtime image sets (the builder's are pip's, not the app's)."""
    return {
        item.split("=", 1)[0]
        for line in dockerfile_stages()[-1]
        if line.upper().startswith("ENV ")
        for item in shlex.split(line[4:])
    }


def compose_env_names() -> set[str]:
    return {name for service in app_services(compose()).values() for name in service["environment"]}


@pytest.mark.parametrize(
    "source", ["kubernetes", "dockerfile", "compose"], ids=["k8s", "Dockerfile", "compose"]
)
def test_environment_names_are_documented_and_read_by_the_app(source: str) -> None:
    names = {
        "kubernetes": kubernetes_env_names,
        "dockerfile": dockerfile_env_names,
        "compose": compose_env_names,
    }[source]()
    documented = readme_environment_names()
    code = app_source_text()

    assert documented >= CONTRACT_ENV
    for name in sorted(names - PLUMBING_ENV):
        assert name in documented, f"{name} is not in docs/environment.md"
        assert f'"{name}"' in code, f"{name} is not read by the app"


def test_every_app_pod_gets_the_contract_environment_from_the_configmap_and_secret() -> None:
    config = find("ConfigMap", "highscale-config")
    secret = load_documents(EXAMPLE_SECRET)[0]

    assert set(secret["stringData"]) == SECRET_ENV | {MIGRATE_KEY}
    assert not SECRET_ENV & set(config["data"])
    assert config["data"]["DJANGO_DEBUG"] == "false"
    assert set(config["data"]) | set(secret["stringData"]) >= CONTRACT_ENV
    assert "CHANGE-ME" in secret["stringData"]["DJANGO_SECRET_KEY"]
    assert "EXAMPLE ONLY" in EXAMPLE_SECRET.read_text()
    for workload in workloads():
        for container in containers(workload):
            sources = container["envFrom"]
            assert {"configMapRef": {"name": "highscale-config"}} in sources
            assert {"secretRef": {"name": secret["metadata"]["name"]}} in sources
            for item in container.get("env", []):
                for reference in re.findall(r"\$\((\w+)\)", item.get("value", "")):
                    assert reference in container_env(container) or reference in config["data"]


# --- Dockerfile ------------------------------------------------------------------------------


def test_dockerfile_builds_in_stages_and_runs_as_a_non_root_user() -> None:
    stages = dockerfile_stages()
    builder, runtime = stages[0], stages[-1]
    text = DOCKERFILE.read_text()
    users = [line.split()[1] for line in runtime if line.upper().startswith("USER ")]
    cmd = next(line for line in runtime if line.upper().startswith("CMD "))

    assert len(stages) >= 2
    assert re.fullmatch(r"FROM \$\{PYTHON_IMAGE\} AS builder", builder[0])
    assert "ARG PYTHON_IMAGE=python:3.11-slim" in text
    assert any("requirements-runtime.lock" in line for line in builder)
    assert any(line.startswith("COPY --from=builder /opt/venv") for line in runtime)
    assert users
    assert users[-1].split(":")[0] not in {"0", "root"}
    collect = next(line for line in runtime if "collectstatic" in line)
    # Unset, not empty: an empty directory makes prometheus_client write into /app.
    assert "env -u PROMETHEUS_MULTIPROC_DIR" in collect
    assert any(line.startswith("HEALTHCHECK") and "/healthz" in line for line in runtime)
    assert any(line.startswith("EXPOSE") and "8000" in line.split() for line in runtime)
    assert yaml.safe_load(cmd[4:]) == WEB_COMMAND


def dockerignored(path: str, patterns: list[str]) -> bool:
    """Return whether Docker's build context leaves ``path`` out (no ``!`` patterns used)."""
    for pattern in patterns:
        regex = "".join(
            ".*" if part == "**" else "[^/]*" if part == "*" else re.escape(part)
            for part in re.split(r"(\*\*|\*)", pattern.strip("/"))
        )
        # A pattern matching a directory leaves out everything below it.
        if re.fullmatch(f"{regex}(/.*)?", path):
            return True
    return False


def test_dockerignore_leaves_out_local_state_but_not_the_code() -> None:
    patterns = [
        line.strip()
        for line in DOCKERIGNORE.read_text().splitlines()
        if line.strip() and not line.startswith("#")
    ]
    code = [
        str(path.relative_to(ROOT))
        for source in ("apps", "config")
        for path in (ROOT / source).rglob("*")
        if path.is_file() and "__pycache__" not in path.parts
    ]
    needed = [*code, "manage.py", "requirements-runtime.lock", "deploy/gunicorn.conf.py"]

    assert not any(line.startswith("!") for line in patterns)
    assert [path for path in needed if dockerignored(path, patterns)] == []
    for local in (
        ".venv/bin/python",
        "var/highscale.sqlite3",
        ".git/HEAD",
        ".mypy_cache/x",
        "apps/core/__pycache__/errors.cpython-311.pyc",
        ".pytest_cache/v",
    ):
        assert dockerignored(local, patterns), local


# --- docker-compose.yml -------------------------------------------------------------------


def test_compose_runs_the_stack_topology_with_the_same_commands() -> None:
    data = compose()
    services = data["services"]
    apps = app_services(data)

    assert {
        "postgres",
        "postgres-replica",
        "pgbouncer",
        "redis",
        "rabbitmq",
        "migrate",
        "web",
        "worker",
        "webhook-worker",
        "beat",
        "nginx",
    } <= set(services)
    assert services["web"]["command"] == WEB_COMMAND == k8s_container("highscale-web")["command"]
    assert services["web"]["deploy"]["replicas"] >= 2
    assert services["worker"]["command"] == k8s_container("highscale-worker")["command"]
    assert (
        services["webhook-worker"]["command"]
        == k8s_container("highscale-webhook-worker")["command"]
    )
    assert services["beat"]["command"] == k8s_container("highscale-beat")["command"]
    assert services["migrate"]["command"] == ["python", "manage.py", "migrate", "--noinput"]
    assert "@postgres:5432/" in services["migrate"]["environment"]["DATABASE_URL"]
    for name, service in services.items():
        for dependency in service.get("depends_on", {}):
            assert dependency in services, f"{name} depends on unknown {dependency}"
    for name, service in apps.items():
        assert service["build"] == ".", name
        assert service["read_only"] is True, name
        assert service["cap_drop"] == ["ALL"], name


def test_compose_app_environment_goes_through_pgbouncer_and_trusts_only_nginx() -> None:
    data = compose()
    env = data["services"]["web"]["environment"]
    pgbouncer = data["configs"]["pgbouncer-ini"]["content"]
    settings = dict(
        (key.strip(), value.strip())
        for key, _, value in (line.partition("=") for line in pgbouncer.splitlines() if "=" in line)
    )
    nginx_address = data["services"]["nginx"]["networks"]["default"]["ipv4_address"]

    assert set(env) >= CONTRACT_ENV
    assert "@pgbouncer:6432/" in env["DATABASE_URL"]
    assert all("@pgbouncer:6432/" in url for url in env["DATABASE_REPLICA_URLS"].split(","))
    assert env["RATELIMIT_TRUSTED_PROXIES"] == nginx_address
    # The reference's PgBouncer: transaction mode and its pool sizes.
    assert settings["pool_mode"] == "transaction"
    assert settings["max_client_conn"] == "1000"
    assert settings["default_pool_size"] == "20"
    assert settings["min_pool_size"] == "5"
    assert settings["reserve_pool_size"] == "5"
    assert "highscale_replica_1" in settings


def test_compose_nginx_config_passes_nginx_t(tmp_path: Path) -> None:
    nginx = "/usr/sbin/nginx" if Path("/usr/sbin/nginx").exists() else find_binary("nginx")
    mounts = compose()["services"]["nginx"]["volumes"]
    # In Compose `web` resolves through Docker's DNS and the paths are the image's; here
    # they move to loopback and a scratch directory, the rest is checked as shipped.
    text = (
        COMPOSE_NGINX.read_text()
        .replace("server web:8000", "server 127.0.0.1:8000")
        .replace("user nginx;", "")
        .replace("/var/cache/nginx", str(tmp_path / "cache"))
        .replace("/var/run/nginx.pid", str(tmp_path / "nginx.pid"))
    )
    config = tmp_path / "nginx.conf"
    config.write_text(text)
    (tmp_path / "cache").mkdir()

    assert "./deploy/nginx/compose.conf:/etc/nginx/nginx.conf:ro" in mounts
    result = subprocess.run(
        [nginx, "-t", "-p", f"{tmp_path}/", "-c", str(config)],
        capture_output=True,
        text=True,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    assert "least_conn;" in text
    assert "keepalive 32;" in text
