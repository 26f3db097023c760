"""``make stack``, end to end: the whole topology on free ports, used through nginx only.

One stack is started for the module (``make stack`` with ``STACK_*`` ports and a private
``STACK_VAR_DIR``) and the tests run against it in file order: the API flow through
nginx, PgBouncer and the worker; a gunicorn instance stopped under a stream of requests;
Ctrl-C leaving no process behind; a second run finding the first run's data.
"""

from __future__ import annotations

import contextlib
import os
import re
import shutil
import signal
import subprocess
import tempfile
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
import requests

from deploy.local.binaries import find_binary
from deploy.local.processes import free_port, port_open
from tests.events_worker import WarehouseServer

ROOT = Path(__file__).resolve().parents[2]
# Variables of the test run that must not leak into the stack, which sets its own.
APP_VARIABLES = (
    "DATABASE_URL", "DATABASE_REPLICA_URLS", "REDIS_URL", "CELERY_BROKER_URL",
    "DJANGO_SECRET_KEY", "DJANGO_DEBUG", "DJANGO_ALLOWED_HOSTS", "RATELIMIT_OVERRIDES",
    "DJANGO_SESSION_COOKIE_SECURE", "DJANGO_CSRF_COOKIE_SECURE", "PROMETHEUS_MULTIPROC_DIR",
    "DJANGO_STATIC_ROOT", "DJANGO_SETTINGS_MODULE", "DATABASE_SHARD_URLS",
    "REDIS_CLUSTER_NODES", "REDIS_SENTINELS", "REDIS_SENTINEL_MASTER",
)  # fmt: skip
PORT_VARIABLES = (
    "STACK_NGINX_PORT", "STACK_POSTGRES_PORT", "STACK_REPLICA_PORT", "STACK_PGBOUNCER_PORT",
    "STACK_PGBOUNCER_REPLICA_PORT", "STACK_REDIS_PORT", "STACK_WORKER_METRICS_PORT",
    "STACK_WEBHOOK_WORKER_METRICS_PORT",
)  # fmt: skip
WEBHOOK_CONCURRENCY = 2
START_TIMEOUT = 150
# make's status after Ctrl-C: its own interrupt, or honcho's 130 passed on as an error.
STOPPED_BY_CTRL_C = (0, 2, 130, -signal.SIGINT)


def wait_for(check: Callable[[], Any], timeout: float, what: str, interval: float = 0.2) -> Any:
    deadline = time.monotonic() + timeout
    while True:
        result = check()
        if result:
            return result
        if time.monotonic() > deadline:
            pytest.fail(f"timed out after {timeout} s waiting for {what}")
        time.sleep(interval)


def _children(pid: int) -> set[int]:
    """Return every descendant of ``pid`` (the stack's processes, whatever their session)."""
    parents: dict[int, int] = {}
    for stat in Path("/proc").glob("[0-9]*/stat"):
        with contextlib.suppress(OSError, IndexError, ValueError):
            parents[int(stat.parent.name)] = int(stat.read_text().rsplit(")", 1)[1].split()[1])
    found: set[int] = set()
    frontier = {pid}
    while frontier:
        frontier = {child for child, parent in parents.items() if parent in frontier} - found
        found |= frontier
    return found


def _running(pid: int) -> bool:
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return False
    return stat.rsplit(")", 1)[1].split()[0] != "Z"


def _commands_mentioning(text: str) -> list[str]:
    found = []
    for cmdline in Path("/proc").glob("[0-9]*/cmdline"):
        with contextlib.suppress(OSError):
            args = cmdline.read_bytes().replace(b"\0", b" ").decode(errors="replace")
            if text in args:
                found.append(f"{cmdline.parent.name}: {args}")
    return found


@dataclass
class Stack:
    """One ``make stack`` run in the background, and how to reach and stop it."""

    var: Path
    env: dict[str, str]
    ports: dict[str, int]
    web_ports: tuple[int, int]
    popen: subprocess.Popen[bytes] | None = None
    runs: int = 0
    seen_pids: set[int] = field(default_factory=set)
    users: list[str] = field(default_factory=list)
    target: str = "stack"
    start_timeout: float = START_TIMEOUT

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.ports['STACK_NGINX_PORT']}"

    @property
    def log_path(self) -> Path:
        return self.var.parent / f"stack-{self.runs}.log"

    def log(self) -> str:
        return self.log_path.read_text(errors="replace") if self.log_path.exists() else ""

    def first_failure(self) -> str:
        """The log up to where honcho began stopping everything (what failed first),
        then its last lines: the tail alone shows only the stop."""
        lines = self.log().splitlines()
        stop = next((i for i, line in enumerate(lines) if "sending SIGTERM" in line), None)
        if stop is None:
            return "\n".join(lines[-60:])
        return "\n".join([*lines[max(0, stop - 40) : stop], "[…]", *lines[-15:]])

    def start(self) -> None:
        self.runs += 1
        log = open(self.log_path, "wb")  # noqa: SIM115 -- kept open for the stack's life
        # `-o install`: the test runs in the installed venv; no package install mid-run.
        self.popen = subprocess.Popen(
            ["make", "--no-print-directory", "-o", "install", self.target],
            cwd=ROOT,
            env=self.env,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        log.close()

        def healthy() -> bool:
            assert self.popen is not None
            if self.popen.poll() is not None:
                pytest.fail(
                    f"make {self.target} exited ({self.popen.returncode}):\n{self.first_failure()}"
                )
            with contextlib.suppress(requests.RequestException):
                return requests.get(f"{self.url}/healthz", timeout=2).status_code == 200
            return False

        wait_for(healthy, self.start_timeout, "nginx → gunicorn to answer /healthz")

    def interrupt(self) -> int:
        """Press Ctrl-C: SIGINT to the process group of ``make stack``; return its status."""
        assert self.popen is not None
        self.seen_pids |= _children(self.popen.pid) | {self.popen.pid}
        os.killpg(self.popen.pid, signal.SIGINT)
        try:
            return self.popen.wait(120)
        except subprocess.TimeoutExpired:
            pytest.fail(f"make stack did not stop after Ctrl-C:\n{self.log()[-4000:]}")

    def kill_leftovers(self) -> None:
        """Last resort after a failed test: kill whatever of the stack still runs."""
        if self.popen is not None and self.popen.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self.popen.pid, signal.SIGINT)
            with contextlib.suppress(subprocess.TimeoutExpired):
                self.popen.wait(60)
        pids = set(self.seen_pids)
        if self.popen is not None:
            pids |= _children(self.popen.pid)
        for pid in pids:
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.kill(pid, signal.SIGKILL)

    def gunicorn_master(self, name: str) -> int:
        """Return the pid of instance ``name``'s master, or 0 between two masters."""
        with contextlib.suppress(OSError, ValueError):
            return int((self.var / "run" / f"{name}.pid").read_text())
        return 0


@pytest.fixture(scope="module")
def stack(warehouse: WarehouseServer) -> Iterator[Stack]:
    """Start ``make stack`` on free ports in a private directory, for the whole module."""
    with running_stack(
        "stack",
        STACK_WEB_CONCURRENCY="2",
        STACK_WORKER_CONCURRENCY="2",
        STACK_WEBHOOK_WORKER_CONCURRENCY=str(WEBHOOK_CONCURRENCY),
        # A warehouse the tests can make slow: a held call waits, it does not time out.
        WAREHOUSE_WEBHOOK_URL=warehouse.url,
        WAREHOUSE_WEBHOOK_TIMEOUT_SECONDS="150",
        CELERY_TASK_SOFT_TIME_LIMIT="180",
    ) as started:
        yield started


@contextlib.contextmanager
def running_stack(
    target: str, ports: dict[str, int] | None = None, **variables: str
) -> Iterator[Stack]:
    """Run ``make <target>`` on free ports in a private directory; stop it and clean up.

    ``ports`` are more ports of the stack (checked closed after Ctrl-C); ``variables``
    join the environment.
    """
    base = Path(tempfile.mkdtemp(prefix=f"highscale-{target}-"))
    base.chmod(0o755)  # PostgreSQL and PgBouncer run as `postgres` inside it
    var = base / "var"
    stack_ports = {name: free_port() for name in PORT_VARIABLES}
    web_ports = (free_port(), free_port())
    prefix = f"{target.replace('-', '')}{os.getpid()}"
    env = {key: value for key, value in os.environ.items() if key not in APP_VARIABLES}
    env.update(
        {name: str(port) for name, port in stack_ports.items()},
        STACK_WEB_PORTS=",".join(map(str, web_ports)),
        STACK_VAR_DIR=str(var),
        # The run's own RabbitMQ (the harness's), and queues no other run consumes.
        STACK_BROKER_URL=os.environ["CELERY_BROKER_URL"],
        EVENTS_QUEUE_PREFIX=prefix,
        STACK_POSTGRES_FSYNC="off",
        **variables,
    )
    stack = Stack(
        var=var, env=env, ports={**stack_ports, **(ports or {})}, web_ports=web_ports,
        target=target,
    )  # fmt: skip
    try:
        stack.start()
        yield stack
    finally:
        stack.kill_leftovers()
        _delete_queues(os.environ["CELERY_BROKER_URL"], prefix)
        if not os.environ.get("HIGHSCALE_KEEP_SERVER_DIRS"):
            shutil.rmtree(base, ignore_errors=True)


def _delete_queues(broker_url: str, prefix: str) -> None:
    from kombu import Connection

    with contextlib.suppress(Exception), Connection(broker_url) as connection:
        channel: Any = connection.channel()
        for suffix in ("default", "orders", "webhooks", "dead"):
            with contextlib.suppress(Exception):
                channel.queue_delete(f"{prefix}.{suffix}")
        for exchange in (prefix, f"{prefix}.dlx"):
            with contextlib.suppress(Exception):
                channel.exchange_delete(exchange)


def _pgbouncer_show(stack: Stack, what: str) -> list[dict[str, str]]:
    """Return the rows of ``SHOW <what>`` from the stack's primary PgBouncer."""
    psql = find_binary("psql")
    port = str(stack.ports["STACK_PGBOUNCER_PORT"])
    out = subprocess.run(
        [psql, "-h", "127.0.0.1", "-p", port, "-U", "postgres", "-A", "-F", "\t"]
        + ["-c", f"SHOW {what}", "pgbouncer"],
        check=True,
        capture_output=True,
        text=True,
    ).stdout.splitlines()
    header = out[0].split("\t")
    return [dict(zip(header, line.split("\t"), strict=False)) for line in out[1:-1]]


def _transactions(stack: Stack) -> int:
    rows = [row for row in _pgbouncer_show(stack, "STATS") if row["database"] == "highscale"]
    return int(rows[0]["total_xact_count"]) if rows else 0


def _launch(env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    """Run the launcher the way `make stack` does, for a run expected to stop at once."""
    return subprocess.run(
        [str(ROOT / ".venv" / "bin" / "python"), "-m", "deploy.stack"],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )


def _launcher_env() -> dict[str, str]:
    return {key: value for key, value in os.environ.items() if key not in APP_VARIABLES}


def test_the_launcher_refuses_a_busy_port_before_starting_anything(tmp_path: Path) -> None:
    redis_port = os.environ["REDIS_URL"].rsplit(":", 1)[1].split("/")[0]
    env = _launcher_env()
    env.update(STACK_VAR_DIR=str(tmp_path / "var"), STACK_NGINX_PORT=redis_port)

    result = _launch(env)

    assert result.returncode == 2
    assert f"ports already in use: STACK_NGINX_PORT={redis_port}" in result.stderr
    assert not (tmp_path / "var" / "postgres").exists()


@pytest.mark.skipif(os.geteuid() != 0, reason="PostgreSQL runs as another user only as root")
def test_the_launcher_stops_with_one_line_when_postgres_cannot_reach_the_data(
    tmp_path: Path,
) -> None:
    home = tmp_path / "home"
    home.mkdir(mode=0o700)
    env = _launcher_env()
    env.update({name: str(free_port()) for name in PORT_VARIABLES})
    env.update(STACK_VAR_DIR=str(home / "checkout" / "var"), STACK_WEB_PORTS=str(free_port()))

    result = _launch(env)

    assert result.returncode == 2
    assert result.stderr.splitlines() == [
        f"make stack: the postgres user cannot enter {home}/checkout/var (a parent directory "
        "is closed to it); set STACK_VAR_DIR to a directory it can reach, e.g. "
        "STACK_VAR_DIR=/var/tmp/highscale-stack make stack"
    ]
    assert not (home / "checkout" / "var" / "postgres").exists()


def test_an_order_goes_through_nginx_gunicorn_pgbouncer_and_the_worker(stack: Stack) -> None:
    url = stack.url
    transactions_before = _transactions(stack)
    name = f"stack-{uuid.uuid4().hex[:8]}"
    signup = {"username": name, "email": f"{name}@example.com", "password": "a-long-passphrase"}

    # One session, as a client keeps cookies: the read-after cookie sends the reads that
    # follow a write to the primary until the replica has caught up.
    client = requests.Session()
    created = client.post(f"{url}/api/v1/users", json=signup, timeout=10)
    stack.users.append(name)
    login = client.post(
        f"{url}/api/v1/auth/token",
        json={"username": name, "password": "a-long-passphrase"},
        timeout=10,
    )
    assert login.status_code == 200, login.text
    client.headers["Authorization"] = f"Token {login.json()['token']}"
    products = client.get(f"{url}/api/v1/products", timeout=10)
    # The most stocked one: the demo orders seeded at release may still be taking stock.
    product = max(products.json()["results"], key=lambda p: p["stock"])
    order = {"items": [{"product_id": product["id"], "quantity": 1}]}
    no_key = client.post(f"{url}/api/v1/orders", json=order, timeout=10)
    placed = client.post(
        f"{url}/api/v1/orders",
        json=order,
        headers={"Idempotency-Key": uuid.uuid4().hex},
        timeout=10,
    )
    order_url = f"{url}/api/v1/orders/{placed.json()['id']}"

    def confirmed() -> dict[str, Any] | None:
        reply = client.get(order_url, timeout=10)
        assert reply.status_code == 200, reply.text
        body: dict[str, Any] = reply.json()
        return body if body["status"] != "pending" else None

    # The 500 demo orders of the release go first; one poll a second stays inside the
    # API's 100 requests a minute.
    final = wait_for(confirmed, 240, "the worker to confirm the order", interval=1)

    assert created.status_code == 201, created.text
    assert created.json()["username"] == name
    assert products.headers["Content-Encoding"] == "gzip"
    assert no_key.status_code == 400
    assert no_key.headers["Content-Type"] == "application/json"
    assert placed.status_code == 201, placed.text
    assert placed.json()["status"] == "pending"
    assert final["status"] == "confirmed"
    # Every statement of the flow went through PgBouncer, which pools by transaction.
    config = {row["key"]: row["value"] for row in _pgbouncer_show(stack, "CONFIG")}
    assert config["pool_mode"] == "transaction"
    assert config["max_client_conn"] == "1000"
    assert _transactions(stack) - transactions_before >= 5


def _signed_in(stack: Stack) -> requests.Session:
    name = f"stack-{uuid.uuid4().hex[:8]}"
    signup = {"username": name, "email": f"{name}@example.com", "password": "a-long-passphrase"}
    client = requests.Session()
    assert client.post(f"{stack.url}/api/v1/users", json=signup, timeout=10).status_code == 201
    login = client.post(
        f"{stack.url}/api/v1/auth/token",
        json={"username": name, "password": "a-long-passphrase"},
        timeout=10,
    )
    client.headers["Authorization"] = f"Token {login.json()['token']}"
    return client


def _most_stocked_product(stack: Stack, client: requests.Session) -> int:
    """Return the id of the product with the most stock, so orders rarely run it out."""
    products = client.get(f"{stack.url}/api/v1/products", timeout=10).json()["results"]
    return int(max(products, key=lambda p: p["stock"])["id"])


def _place_order(stack: Stack, client: requests.Session, product_id: int) -> int:
    """Place one order of one unit through nginx with a fresh Idempotency-Key; return its id."""
    placed = client.post(
        f"{stack.url}/api/v1/orders",
        json={"items": [{"product_id": product_id, "quantity": 1}]},
        headers={"Idempotency-Key": uuid.uuid4().hex},
        timeout=10,
    )
    assert placed.status_code == 201, placed.text
    return int(placed.json()["id"])


def test_a_warehouse_that_holds_every_call_holds_back_no_reservation(
    stack: Stack, warehouse: WarehouseServer
) -> None:
    client = _signed_in(stack)
    product_id = _most_stocked_product(stack, client)

    def place() -> int:
        return _place_order(stack, client, product_id)

    def statuses(ids: list[int]) -> dict[int, str]:
        # One list request per poll, well inside the 100 requests a minute of the API.
        listed = client.get(f"{stack.url}/api/v1/orders", params={"limit": 50}, timeout=10)
        assert listed.status_code == 200, listed.text
        return {o["id"]: o["status"] for o in listed.json()["results"] if o["id"] in ids}

    def all_left_pending(ids: list[int]) -> dict[int, str] | None:
        found = statuses(ids)
        return found if len(found) == len(ids) and "pending" not in found.values() else None

    warehouse.hold()
    try:
        # First occupy every process of the webhook pool with a call the warehouse holds.
        first = [place() for _ in range(WEBHOOK_CONCURRENCY)]
        wait_for(lambda: all_left_pending(first), 240, "the first orders", interval=1)
        wait_for(lambda: warehouse.held >= WEBHOOK_CONCURRENCY, 90, "the webhook pool to be busy")
        # Then orders keep being confirmed while no warehouse call has been answered.
        later = [place() for _ in range(4)]
        final = wait_for(lambda: all_left_pending(later), 240, "the later orders", interval=1)
        held, answered = warehouse.held, warehouse.answered
    finally:
        warehouse.release()

    assert set(final.values()) == {"confirmed"}
    assert held == WEBHOOK_CONCURRENCY
    assert answered == 0


def test_the_public_profile_is_served_from_the_edge_the_second_time(stack: Stack) -> None:
    # A seeded demo user; nobody has asked for this profile yet.
    path = f"{stack.url}/api/v1/users/2"

    first = requests.get(path, timeout=10)
    second = requests.get(path, timeout=10)
    authed = requests.get(path, headers={"Authorization": "Token nope"}, timeout=10)

    assert first.status_code == second.status_code == 200
    assert "s-maxage=" in first.headers["Cache-Control"]
    assert second.headers["X-Cache-Status"] == "HIT"
    assert second.json() == first.json()
    assert second.headers["ETag"] == first.headers["ETag"]
    # Anything with credentials bypasses the edge and reaches the app (here: a bad token).
    assert authed.headers["X-Cache-Status"] == "BYPASS"
    assert authed.status_code == 401


def test_the_next_link_through_nginx_keeps_the_port_the_client_used(stack: Stack) -> None:
    page = requests.get(f"{stack.url}/api/v1/products", params={"limit": 1}, timeout=10)
    link = page.json()["next"]
    followed = requests.get(link, timeout=10)

    assert stack.ports["STACK_NGINX_PORT"] != 80
    assert link.startswith(f"{stack.url}/api/v1/products?cursor=")
    assert followed.status_code == 200
    assert followed.json()["results"][0]["id"] > page.json()["results"][0]["id"]


def test_the_catalogue_is_served_from_the_edge_for_its_short_max_age(stack: Stack) -> None:
    path = f"{stack.url}/api/v1/products/3"

    first = requests.get(path, timeout=10)
    second = requests.get(path, timeout=10)

    assert first.headers["Cache-Control"] == "public, max-age=0, s-maxage=5"
    assert second.headers["X-Cache-Status"] == "HIT"
    assert second.json() == first.json()


def test_responses_carry_rate_limit_and_request_id_headers(stack: Stack) -> None:
    response = requests.get(f"{stack.url}/api/v1/products", timeout=10)
    given = requests.get(
        f"{stack.url}/api/v1/products", headers={"X-Request-ID": "given-id-42"}, timeout=10
    )

    assert response.status_code == 200
    assert response.headers["RateLimit-Policy"] == '"default";q=100;w=60'
    assert re.fullmatch(r'"default";r=\d+;t=\d+', response.headers["RateLimit"])
    assert re.fullmatch(r"[0-9a-f]{32}", response.headers["X-Request-ID"])
    assert given.headers["X-Request-ID"] == "given-id-42"


def test_metrics_admin_docs_and_static_files_answer_on_loopback(stack: Stack) -> None:
    url = stack.url
    # Each gunicorn instance reports its own workers; with idle upstreams least_conn takes
    # turns, so a few scrapes through nginx see both.
    scrapes = [requests.get(f"{url}/metrics", timeout=10) for _ in range(4)]
    samples = [
        line
        for scrape in scrapes
        for line in scrape.text.splitlines()
        if line.startswith("http_requests_total{")
    ]
    admin = requests.get(f"{url}/admin/login/", timeout=10)
    docs = requests.get(f"{url}/api/docs/", timeout=10)
    assets = re.findall(r'(?:src|href)="(/static/[^"]+)"', docs.text)
    asset = requests.get(f"{url}{assets[0]}", timeout=10)
    worker_metrics = requests.get(
        f"http://127.0.0.1:{stack.ports['STACK_WORKER_METRICS_PORT']}/metrics", timeout=10
    )

    assert [scrape.status_code for scrape in scrapes] == [200] * 4
    # The order placed above, counted by its route template.
    assert any(
        'endpoint="/api/v1/orders"' in line and 'method="POST"' in line and 'status="201"' in line
        for line in samples
    ), samples
    assert admin.status_code == 200
    assert "csrfmiddlewaretoken" in admin.text
    assert docs.status_code == 200
    assert asset.status_code == 200
    assert asset.headers["Cache-Control"] == "max-age=3600"
    # nginx served it from collectstatic's output: no request id reached the app.
    assert "X-Cache-Status" not in asset.headers
    assert worker_metrics.status_code == 200
    assert "celery_tasks_total" in worker_metrics.text


def test_sigterm_to_one_gunicorn_instance_loses_no_request(stack: Stack) -> None:
    old_master = stack.gunicorn_master("web1")
    failures: list[str] = []
    answered = [0]
    done = threading.Event()

    def stream() -> None:
        with requests.Session() as session:
            while not done.is_set():
                try:
                    response = session.get(f"{stack.url}/healthz", timeout=10)
                except requests.RequestException as error:
                    failures.append(repr(error))
                    continue
                if response.status_code != 200:
                    failures.append(f"{response.status_code}: {response.text[:200]}")
                answered[0] += 1

    threads = [threading.Thread(target=stream) for _ in range(4)]
    for thread in threads:
        thread.start()
    try:
        wait_for(lambda: answered[0] >= 50, 30, "the stream to get going")
        os.kill(old_master, signal.SIGTERM)
        wait_for(lambda: not _running(old_master), 40, "web1's gunicorn to drain and exit")
        during = answered[0]
        # The supervisor starts the instance again; the stream keeps going meanwhile.
        wait_for(
            lambda: (
                stack.gunicorn_master("web1") != old_master
                and port_open("127.0.0.1", stack.web_ports[0])
            ),
            60,
            "web1 to come back",
        )
        wait_for(lambda: answered[0] >= during + 50, 30, "requests after the restart")
    finally:
        done.set()
        for thread in threads:
            thread.join(15)

    assert failures == []
    assert answered[0] >= 150


def test_ctrl_c_stops_every_process_of_the_stack(stack: Stack) -> None:
    records = sorted(path.stem for path in (stack.var / "run").glob("*.json"))
    stack_ports = [*stack.ports.values(), *stack.web_ports]
    before = _children(stack.popen.pid) if stack.popen else set()

    status = stack.interrupt()

    assert len(before) >= 20  # servers, their workers and supervisors were all seen
    assert [pid for pid in stack.seen_pids if _running(pid)] == []
    assert [port for port in stack_ports if port_open("127.0.0.1", port)] == []
    assert _commands_mentioning(str(stack.var)) == []
    assert status in STOPPED_BY_CTRL_C
    assert records == sorted(
        ["beat", "nginx", "pgbouncer", "pgbouncer-replica", "postgres", "redis", "replica"]
        + ["web1", "web2", "webhook-worker", "worker"]
    )
    log = stack.log()
    # The data tier stopped after the app: PostgreSQL's shutdown is the last word.
    assert log.index("web1 stopped") < log.index("pgbouncer stopped")
    assert log.index("pgbouncer stopped") < log.index("postgres stopped")
    assert log.index("nginx stopped") < log.index("web2 stopped")


def test_a_second_run_reuses_the_data_of_the_first(stack: Stack) -> None:
    stack.start()
    try:
        login = requests.post(
            f"{stack.url}/api/v1/auth/token",
            json={"username": stack.users[0], "password": "a-long-passphrase"},
            timeout=10,
        )
        log = stack.log()
    finally:
        status = stack.interrupt()

    assert "reusing" in log
    assert "first run" not in log
    assert "Demo data not loaded" in log
    assert login.status_code == 200
    assert status in STOPPED_BY_CTRL_C
    assert _commands_mentioning(str(stack.var)) == []
